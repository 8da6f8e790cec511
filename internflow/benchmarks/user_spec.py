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
    train_data: capitals-train.jsonl   # optional: training rows, same fields as `data`,
                                       #   or hub:owner/name[:config][@split] (any known layout)
    dev_data: capitals-dev.jsonl       # optional: the split iterations are chosen on

Without `train_data` the campaign still searches for training data (internflow.data.candidates).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from internflow.benchmarks.answers import (
    MAX_CHOICES,
    UnreadableAnswerError,
    choice_extractor,
    extract_number,
    letters_equal,
    numbers_equal,
    read_choice,
    read_letter,
    read_number,
)
from internflow.benchmarks.base import Benchmark, BenchmarkItem, carve_dev, read_text, render_multiple_choice

__all__ = ["TaskSpec", "TaskSpecError", "load_task_spec", "spec_item", "spec_items", "template_fields"]


class TaskSpecError(ValueError):
    pass


class TaskSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    data: str = Field(description="JSONL file of rows, relative to the spec file.")
    prompt_template: str = Field(
        description="Python format string over the row's top-level fields, e.g. '{question}'; literal braces "
        "are written '{{' and '}}'."
    )
    answer_field: str
    choices_field: str | None = Field(
        None, description="A list field of 2-10 options: the task becomes multiple choice (A-J)."
    )
    id_field: str | None = None
    extraction: str = Field("text", description="number | choice | text | regex:<pattern with one group>")
    metric: Literal["exact", "numeric", "choice"] = "exact"
    max_new_tokens: int = Field(64, ge=1, le=8192)
    description: str = ""
    train_data: str | None = Field(
        None,
        description="Training rows: a JSONL file with the same fields as `data`, or hub:owner/name[:config][@split].",
    )
    dev_data: str | None = Field(None, description="Dev rows (same fields as `data`): what iterations are chosen on.")

    @field_validator("train_data", "dev_data")
    @classmethod
    def _a_file_or_a_hub_id(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("hub:"):
            from internflow.data.hub import parse_hub_id

            parse_hub_id(value)  # ValueError names the expected form
        return value

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


_FIELD_NAME = re.compile(r"[^\W\d][\w -]*")  # a row's top-level field: 'question', 'Correct Answer'
_BRACES_HINT = "write literal braces as '{{' and '}}' (e.g. '\\boxed{{}}', '{{\"answer\": 42}}')"


def template_fields(template: str, where: str) -> tuple[str, ...]:
    """The row fields a prompt template names, checked with Python's own format-string parser.

    Refused with TaskSpecError naming `where` (file and field) and what to write instead: an
    unbalanced brace, a bare '{}' or a JSON example (literal braces must be doubled), attribute or
    index access ('{problem.text}', '{choices[0]}': only top-level fields are read), a bad
    conversion or a field inside a format spec."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise TaskSpecError(f"{where}: {error}; {_BRACES_HINT}") from None
    fields: list[str] = []
    for _, name, format_spec, conversion in parsed:
        if name is None:
            continue
        written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{format_spec}" if format_spec else "")
        written += "}"
        if name == "":
            raise TaskSpecError(f"{where}: {written!r} is a positional field, not a row field; {_BRACES_HINT}")
        head = re.split(r"[.\[]", name, maxsplit=1)[0]
        if head != name and _FIELD_NAME.fullmatch(head):
            raise TaskSpecError(
                f"{where}: {written!r} reads an attribute or item of field {head!r}; only a row's top-level fields "
                f"can be named (give the row a flat field), or {_BRACES_HINT}"
            )
        if not _FIELD_NAME.fullmatch(name):
            raise TaskSpecError(f"{where}: {written!r} does not name a row field; {_BRACES_HINT}")
        if conversion not in (None, "r", "s", "a") or "{" in (format_spec or ""):
            raise TaskSpecError(
                f"{where}: {written!r}: only '{{field}}', '{{field!r}}' or '{{field:spec}}' are read; {_BRACES_HINT}"
            )
        fields.append(name)
    return tuple(fields)


def _extractor(spec: TaskSpec, n_choices: int) -> Callable[[str], str | None]:
    rule = spec.extraction
    if rule == "number":
        return extract_number
    if rule == "choice":
        return choice_extractor(n_choices)
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
        return letters_equal
    return lambda extracted, expected: extracted.strip().casefold() == expected.strip().casefold()


def _reference(spec: TaskSpec, n_choices: int) -> Callable[[object], str | None]:
    """How the spec's gold answers are read: as numbers, option letters or text."""
    if spec.metric == "numeric" or spec.extraction == "number":
        return read_number
    if spec.metric == "choice" or spec.extraction == "choice":
        return lambda answer: read_letter(answer, n_choices)
    return read_text


def _row_answer(spec: TaskSpec, answer: object, choices: tuple[str, ...], where: str) -> str:
    """The row's gold answer, read as the spec judges it; refused naming the row when unreadable."""
    field = f"{where}: {spec.answer_field}"
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise TaskSpecError(f"{field}: empty; every row needs a reference answer")
    if isinstance(answer, list | dict):
        raise TaskSpecError(f"{field}: a {type(answer).__name__}; a row gives exactly one reference answer")
    if choices:
        try:
            return read_choice(answer, choices)
        except UnreadableAnswerError as error:
            raise TaskSpecError(f"{field}: {error}") from None
    reader = _reference(spec, MAX_CHOICES)
    if reader is read_text:
        return str(answer)
    read = reader(answer)
    if read is None:
        expected = "a number (72, 4,000, $1,250.50, '… #### 72')" if reader is read_number else "an option letter A-J"
        raise TaskSpecError(
            f"{field}: {answer!r} is not {expected}, as extraction {spec.extraction!r} / metric {spec.metric!r} need"
        )
    return read


def _row_choices(spec: TaskSpec, row: dict[str, Any], where: str) -> tuple[str, ...]:
    if not spec.choices_field:
        return ()
    choices = row[spec.choices_field]
    if not isinstance(choices, list) or not all(isinstance(c, str | int | float) and str(c).strip() for c in choices):
        raise TaskSpecError(f"{where}: {spec.choices_field}: expected a list of non-empty options")
    if not 2 <= len(choices) <= MAX_CHOICES:
        raise TaskSpecError(
            f"{where}: {spec.choices_field}: {len(choices)} options; between 2 and {MAX_CHOICES} (A-J) are supported"
        )
    return tuple(str(c) for c in choices)


def spec_item(spec: TaskSpec, row: object, where: str, fields: tuple[str, ...]) -> BenchmarkItem:
    """One data row → exactly one item with a prompt and a usable reference, or TaskSpecError
    naming `where` (file:line) and the field.  `fields`: the template's, from template_fields."""
    if not isinstance(row, dict):
        raise TaskSpecError(f"{where}: a JSON {type(row).__name__}; each line must be one object (one item)")
    needed = [*fields, spec.answer_field, *filter(None, (spec.choices_field, spec.id_field))]
    missing = [name for name in dict.fromkeys(needed) if name not in row]
    if missing:
        raise TaskSpecError(
            f"{where}: the row has no field {missing[0]!r} (prompt_template or *_field names it); it has {sorted(row)}"
        )
    try:
        question = spec.prompt_template.format(**row)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise TaskSpecError(f"{where}: prompt_template cannot be filled from this row: {error}") from None
    if not question.strip():
        raise TaskSpecError(f"{where}: prompt_template gives an empty prompt for this row")
    choices = _row_choices(spec, row, where)
    answer = _row_answer(spec, row[spec.answer_field], choices, where)
    row_id = str(row[spec.id_field]) if spec.id_field else where.rsplit(":", 1)[-1]
    return BenchmarkItem(id=f"{spec.name}-{row_id}", question=question, answer=answer, choices=choices)


def spec_items(spec: TaskSpec, data_file: Path, fields: tuple[str, ...]) -> list[BenchmarkItem]:
    """Every row of a JSONL file of the spec's rows, validated one by one (spec_item); blank lines
    are skipped, ids must be unique, and a file without rows is refused."""
    items: list[BenchmarkItem] = []
    first_line: dict[str, int] = {}
    try:
        raw = data_file.read_bytes()
        lines = raw.decode("utf-8").splitlines()
    except OSError as error:
        raise TaskSpecError(f"{data_file}: cannot read the data: {error}") from None
    except UnicodeDecodeError as error:
        bad_line = raw.count(b"\n", 0, error.start) + 1
        raise TaskSpecError(f"{data_file}:{bad_line}: not UTF-8") from None
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{data_file}:{line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise TaskSpecError(f"{where}: not JSON: {error}") from None
        item = spec_item(spec, row, where, fields)
        if item.id in first_line:
            raise TaskSpecError(
                f"{where}: {spec.id_field}: {row[spec.id_field]!r} is also the id of line {first_line[item.id]}"
            )
        first_line[item.id] = line_no
        items.append(item)
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
    template = template_fields(spec.prompt_template, f"{path}: prompt_template")
    # Every split is read now: a bad file or row is refused before anything runs.
    splits = {"test": spec_items(spec, _data_file(path, "data", spec.data), template)}
    for field_name, split in (("train_data", "train"), ("dev_data", "dev")):
        value = getattr(spec, field_name)
        if value is not None and value.startswith("hub:") and split == "dev":
            raise TaskSpecError(f"{path}: dev_data: give a JSONL file with the same fields as `data`")
        if value is not None and not value.startswith("hub:"):
            rows = spec_items(spec, _data_file(path, field_name, value), template)
            # Train and dev ids never collide with test ids (line numbers repeat across files).
            splits[split] = [item.model_copy(update={"id": f"{split}-{item.id}"}) for item in rows]
    named = (spec.train_data,) if spec.train_data and spec.train_data.startswith("hub:") else ()
    dev_source = f"dev_data {spec.dev_data}" if "dev" in splits else ""
    train = splits.get("train", [])
    if "dev" not in splits and len(train) >= MIN_TRAIN_TO_CARVE:
        # No dev_data: a seeded slice of the training data is held out to choose on, never trained on.
        size = min(200, len(train) // 5)
        splits["dev"], splits["train"] = carve_dev(train, [_prompt(i) for i in splits["test"]], size)
        dev_source = f"a seeded slice of {len(splits['dev'])} items of train_data {spec.train_data}, never trained on"
    n_choices = max((len(item.choices) for item in splits["test"]), default=0) or MAX_CHOICES

    def load(split: Literal["train", "dev", "test"]) -> list[BenchmarkItem]:
        if split not in splits:
            field_name = "train_data" if split == "train" else "dev_data"
            raise ValueError(f"task spec {path} has no {split} data ({field_name})")
        return splits[split]

    return Benchmark(
        name=spec.name,
        kind="multiple_choice" if spec.choices_field else "exact_answer",
        description=spec.description or f"User task from {path.name}",
        max_new_tokens=spec.max_new_tokens,
        default_datasets=(),
        literature_query=spec.description or spec.name,
        extract=_extractor(spec, n_choices),
        judge=_judge(spec.metric),
        reference=_reference(spec, n_choices),
        loader=load,
        definition=spec.model_dump_json(),
        train_data=str(_data_file(path, "train_data", spec.train_data)) if "train" in splits else None,
        named_datasets=named,
        dev_source=dev_source,
    )


# Below this many training rows no dev split is carved (20 % of them would be too noisy to choose on).
MIN_TRAIN_TO_CARVE = 100


def _prompt(item: BenchmarkItem) -> str:
    return render_multiple_choice(item.question, item.choices) if item.choices else item.question


def _data_file(spec_path: Path, field: str, value: str | None) -> Path:
    """A data file named by the spec, relative to the spec's folder; TaskSpecError when missing."""
    data_file = (spec_path.parent / str(value)).resolve()
    if not data_file.is_file():
        raise TaskSpecError(f"{spec_path}: {field}: {data_file} does not exist")
    return data_file
