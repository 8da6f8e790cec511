"""Bundled evaluation tasks ("benchmarks", not to be confused with Prefect tasks).

A benchmark owns its data splits, the prompt a model sees, how an answer is extracted from a
generation, and how it is judged.  The evaluator is fixed per campaign: its fingerprint covers
the test split and the scoring code, so a changed evaluator is detectable.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkItem",
    "Split",
    "UnknownBenchmarkError",
    "get_benchmark",
    "numbers_equal",
    "render_multiple_choice",
]

DATA_DIR = Path(__file__).parent / "data"
Split = Literal["train", "dev", "test"]
LETTERS = "ABCD"


class UnknownBenchmarkError(ValueError):
    pass


class BenchmarkItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    question: str
    answer: str
    choices: tuple[str, ...] = ()


def render_multiple_choice(question: str, choices: tuple[str, ...] | list[str]) -> str:
    """The one prompt layout of multiple-choice items, shared by eval and by catalog data."""
    options = "\n".join(f"{letter}) {choice}" for letter, choice in zip(LETTERS, choices, strict=False))
    return f"{question}\n\n{options}\n\nAnswer with the letter of the correct option."


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def extract_number(output: str) -> str | None:
    """'The answer is 7' → '7'; otherwise the last number in the text; None when there is none."""
    stated = _ANSWER_IS.findall(output)
    if stated:
        return stated[-1]
    numbers = _NUMBER.findall(output)
    return numbers[-1] if numbers else None


# A capital letter counts anywhere; a lower-case one only when nothing follows it ("answer: d",
# "(c)"), since in "the answer is a grandson" the "a" is an article, not option A.
_LETTER_STATED = re.compile(r"(?i:answer|option)\s*(?i:is|:)?\s*\(?(?:([A-D])\b|([a-d])(?=\)|[.,:]?\s*$))")
_LETTER_ALONE = re.compile(r"(?:^|[\s(])([A-D])(?:[).:]|\s|$)")


def extract_choice(output: str) -> str | None:
    """A bare leading letter, 'answer is C', or '(C)'; None when no option letter is found."""
    text = output.strip()
    stated = _LETTER_STATED.search(text)
    if stated:
        return (stated.group(1) or stated.group(2)).upper()
    alone = _LETTER_ALONE.search(text)
    return alone.group(1) if alone else None


def numbers_equal(extracted: str, expected: str) -> bool:
    """Numeric answers compared as numbers ('7.0' is '7'); False when either is not a number."""
    try:
        return float(extracted) == float(expected)
    except ValueError:
        return False


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: Literal["exact_answer", "multiple_choice"]
    description: str
    max_new_tokens: int
    default_datasets: tuple[str, ...]
    literature_query: str
    extract: Callable[[str], str | None]
    judge: Callable[[str, str], bool]
    # Catalog and user-spec tasks: where their items come from (bundled ones read DATA_DIR), and
    # the definition (data source, template, extraction rule) that their fingerprint must cover.
    loader: Callable[[Split], list[BenchmarkItem]] | None = None
    definition: str = ""
    # Where the test items live on the Hub (repo, config, split): discovery never offers that split
    # of that repository as training data.
    test_source: tuple[str, str | None, str] | None = None
    # A task spec's own training data (its path, for the record): `load("train")` reads it.
    train_data: str | None = None
    # Hub datasets the task spec names as training data (`hub:owner/name[:config][@split]`).
    named_datasets: tuple[str, ...] = ()

    def prompt(self, item: BenchmarkItem) -> str:
        if self.kind == "multiple_choice":
            return render_multiple_choice(item.question, item.choices)
        return item.question

    def test_split_of(self, repo: str, config: str | None, split: str) -> bool:
        """Whether this Hub split holds the test items (any config of the test repository's test
        split: configs of one dataset often share its questions)."""
        return self.test_source is not None and (repo, split) == (self.test_source[0], self.test_source[2])

    def load(self, split: Split) -> list[BenchmarkItem]:
        if self.loader is not None:
            return list(self.loader(split))  # a copy: loaders may cache, and callers shuffle in place
        return read_items(DATA_DIR / self.name / f"{split}.jsonl")

    def fingerprint(self) -> str:
        """Hash of the test items, the task's definition and the evaluator code: changes if any does."""
        digest = hashlib.sha256()
        for item in self.load("test"):
            digest.update(item.model_dump_json().encode())
        for part in (self.extract, self.judge, self.prompt, render_multiple_choice):
            digest.update(inspect.getsource(part).encode())
        digest.update(json.dumps([self.kind, self.max_new_tokens, self.definition]).encode())
        return digest.hexdigest()[:16]


def read_items(path: Path) -> list[BenchmarkItem]:
    """Items from a JSONL file of {id, question, answer[, choices]}, each bad line named."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    items = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            try:
                items.append(BenchmarkItem.model_validate_json(line))
            except ValueError as error:
                raise ValueError(f"{path}:{line_no}: not a valid benchmark item: {error}") from error
    return items


BENCHMARKS: dict[str, Benchmark] = {
    "arithmetic": Benchmark(
        name="arithmetic",
        kind="exact_answer",
        description="Two-term addition of 1-2 digit integers (reasoning-gym chain_sum); exact numeric answer.",
        max_new_tokens=32,
        default_datasets=("arithmetic-direct",),
        literature_query="supervised fine-tuning small language models arithmetic",
        extract=extract_number,
        judge=numbers_equal,
    ),
    "family-mc": Benchmark(
        name="family-mc",
        kind="multiple_choice",
        description="Family-relationship questions (reasoning-gym) as 4-way multiple choice.",
        max_new_tokens=16,
        default_datasets=("family-mc-direct",),
        literature_query="fine-tuning small language models multiple choice reasoning",
        extract=extract_choice,
        judge=lambda extracted, expected: extracted == expected,
    ),
}


def get_benchmark(name: str) -> Benchmark:
    """A bundled benchmark, a catalog target (PostTrainBench, MMLU) or a user's task spec file."""
    from internflow.benchmarks.posttrainbench import POSTTRAINBENCH
    from internflow.benchmarks.user_spec import load_task_spec

    if name in BENCHMARKS:
        return BENCHMARKS[name]
    if name in POSTTRAINBENCH:
        return POSTTRAINBENCH[name]
    if name.endswith((".yaml", ".yml", ".json")):
        return load_task_spec(Path(name))
    known = ", ".join(sorted(BENCHMARKS) + sorted(POSTTRAINBENCH))
    raise UnknownBenchmarkError(
        f"benchmark: unknown benchmark {name!r}; known: {known}, or a task spec file (.yaml/.json)"
    )
