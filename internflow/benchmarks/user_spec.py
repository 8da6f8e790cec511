"""A user's own eval task, from a YAML (or JSON) spec file: which data, which prompt template,
how the answer is extracted and how it is judged.  `--benchmark path/to/task.yaml` evaluates it
through the same lighteval task and metric as the bundled benchmarks.

    name: capitals
    data: capitals.jsonl          # JSONL, relative to this file
    prompt_template: "What is the capital of {country}? Answer with the city only."
    answer_field: capital
    extraction: regex:([A-Z][a-z]+)   # number | choice | text | regex:<pattern with one group>
    metric: exact                 # exact (case-insensitive) | numeric | choice
    max_new_tokens: 16
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from internflow.benchmarks import Benchmark, BenchmarkItem, extract_choice, extract_number, numbers_equal

__all__ = ["TaskSpec", "TaskSpecError", "load_task_spec"]


class TaskSpecError(ValueError):
    pass


class TaskSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    data: str = Field(description="JSONL file of rows, relative to the spec file.")
    prompt_template: str = Field(description="Python format string over the row's fields, e.g. '{question}'.")
    answer_field: str
    choices_field: str | None = Field(None, description="A list field: the task becomes multiple choice (A-D).")
    id_field: str | None = None
    extraction: str = Field("text", description="number | choice | text | regex:<pattern with one group>")
    metric: Literal["exact", "numeric", "choice"] = "exact"
    max_new_tokens: int = Field(64, ge=1, le=8192)
    description: str = ""

    @field_validator("extraction")
    @classmethod
    def _known_extraction(cls, value: str) -> str:
        if value in ("number", "choice", "text"):
            return value
        if value.startswith("regex:"):
            try:
                pattern = re.compile(value.removeprefix("regex:"))
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
            if pattern.groups != 1:
                raise ValueError("the regex needs exactly one capturing group: the answer")
            return value
        raise ValueError("expected number, choice, text or regex:<pattern>")


def _extractor(rule: str) -> Callable[[str], str | None]:
    if rule == "number":
        return extract_number
    if rule == "choice":
        return extract_choice
    if rule == "text":
        return lambda output: output.strip() or None
    pattern = re.compile(rule.removeprefix("regex:"))

    def extract_by_regex(output: str) -> str | None:
        found = pattern.search(output)
        return found.group(1).strip() if found else None

    return extract_by_regex


def _judge(metric: str) -> Callable[[str, str], bool]:
    if metric == "numeric":
        return numbers_equal
    if metric == "choice":
        return lambda extracted, expected: extracted.upper() == expected.upper()
    return lambda extracted, expected: extracted.strip().casefold() == expected.strip().casefold()


def _items(spec: TaskSpec, data_file: Path) -> list[BenchmarkItem]:
    items = []
    raw = data_file.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad_line = raw.count(b"\n", 0, error.start) + 1
        raise TaskSpecError(f"{data_file}:{bad_line}: not UTF-8") from None
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{data_file}:{line_no}"
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TaskSpecError(f"{where}: expected a JSON object (field: value), got a {type(row).__name__}")
            question = spec.prompt_template.format(**row)
            choices = tuple(str(c) for c in row[spec.choices_field]) if spec.choices_field else ()
            answer = row[spec.answer_field]
        except json.JSONDecodeError as error:
            raise TaskSpecError(f"{where}: not JSON: {error}") from None
        except KeyError as missing:
            raise TaskSpecError(
                f"{where}: the row has no field {missing} (prompt_template or *_field names it)"
            ) from None
        if choices and isinstance(answer, int):
            answer = "ABCD"[answer]  # an index into the choices
        row_id = str(row[spec.id_field]) if spec.id_field else str(line_no)
        items.append(BenchmarkItem(id=f"{spec.name}-{row_id}", question=question, answer=str(answer), choices=choices))
    if not items:
        raise TaskSpecError(f"{data_file}: no rows")
    return items


def load_task_spec(path: Path) -> Benchmark:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = TaskSpec.model_validate(raw)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise TaskSpecError(f"{path}: cannot read the task spec: {error}") from None
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(spec)'}: {e['msg']}" for e in error.errors())
        raise TaskSpecError(f"{path}: {fields}") from None
    data_file = (path.parent / spec.data).resolve()
    if not data_file.is_file():
        raise TaskSpecError(f"{path}: data: {data_file} does not exist")
    items = _items(spec, data_file)  # read once now: a bad row is refused before anything runs

    def load(split: Literal["train", "test"]) -> list[BenchmarkItem]:
        if split != "test":
            raise ValueError(f"task spec {path} holds evaluation data only")
        return items

    return Benchmark(
        name=spec.name,
        kind="multiple_choice" if spec.choices_field else "exact_answer",
        description=spec.description or f"User task from {path.name}",
        max_new_tokens=spec.max_new_tokens,
        default_datasets=(),
        literature_query=spec.description or spec.name,
        extract=_extractor(spec.extraction),
        judge=_judge(spec.metric),
        loader=load,
        definition=spec.model_dump_json(),
    )
