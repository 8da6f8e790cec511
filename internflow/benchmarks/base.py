"""What a benchmark is: its items, its prompt layout, its answer extraction and judging, and its
fingerprint (the registry of benchmarks is the package, internflow.benchmarks, built on these).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from internflow.benchmarks import answers
from internflow.benchmarks.answers import LETTERS, MAX_CHOICES

__all__ = [
    "DATA_DIR",
    "Benchmark",
    "BenchmarkItem",
    "Split",
    "UnknownBenchmarkError",
    "carve_dev",
    "read_items",
    "read_text",
    "render_multiple_choice",
]

DATA_DIR = Path(__file__).parent / "data"
Split = Literal["train", "dev", "test"]


class UnknownBenchmarkError(ValueError):
    pass


class BenchmarkItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    question: str
    answer: str
    choices: tuple[str, ...] = ()


def render_multiple_choice(question: str, choices: tuple[str, ...] | list[str]) -> str:
    """The one prompt layout of multiple-choice items, shared by eval and by catalog data: options
    A) to J); more than ten is a ValueError (never an option silently left out)."""
    if len(choices) > MAX_CHOICES:
        raise ValueError(f"choices: {len(choices)} options; at most {MAX_CHOICES} (A-J) are supported")
    options = "\n".join(f"{letter}) {choice}" for letter, choice in zip(LETTERS, choices, strict=False))
    return f"{question}\n\n{options}\n\nAnswer with the letter of the correct option."


def read_text(reference: object) -> str | None:
    """A free-text gold answer: the text, stripped; None when empty."""
    text = "" if reference is None else str(reference).strip()
    return text or None


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
    # How a gold answer is read into the form `judge` compares (a canonical number, an option
    # letter, stripped text); None when it cannot be read.  GRPO rewards and data checks use it.
    reference: Callable[[object], str | None] = read_text
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
    # What `get_benchmark` was given for it, when that is not its name (a task spec's path).
    key: str = ""
    # Where its dev split (what campaigns choose iterations on) comes from, in words; "" when it
    # has none (then only `select_on: test` can run a campaign on it, marked optimistic).
    dev_source: str = "the bundled dev split, disjoint from train, test and the catalog"

    @property
    def ref(self) -> str:
        """What `get_benchmark` takes to load this benchmark again (a name, or a spec path)."""
        return self.key or self.name

    def prompt(self, item: BenchmarkItem) -> str:
        if self.kind == "multiple_choice":
            return render_multiple_choice(item.question, item.choices)
        return item.question

    def test_split_of(self, repo: str, config: str | None, split: str) -> bool:
        """Whether this Hub split holds the test items (any config of the test repository's test
        split: configs of one dataset often share its questions)."""
        return self.test_source is not None and (repo, split) == (self.test_source[0], self.test_source[2])

    def load(self, split: Split) -> list[BenchmarkItem]:
        """The items of a split; ValueError when this benchmark has no such split."""
        if split == "dev" and not self.dev_source:
            raise ValueError(f"benchmark {self.name!r} has no dev split")
        if self.loader is not None:
            return list(self.loader(split))  # a copy: loaders may cache, and callers shuffle in place
        return read_items(DATA_DIR / self.name / f"{split}.jsonl")

    def fingerprint(self) -> str:
        """Hash of the test items, the task's definition and the evaluator code: changes if any does."""
        digest = hashlib.sha256()
        for item in self.load("test"):
            digest.update(item.model_dump_json().encode())
        for part in (self.extract, self.judge, self.reference, self.prompt, render_multiple_choice, answers):
            digest.update(inspect.getsource(part).encode())
        digest.update(json.dumps([self.kind, self.max_new_tokens, self.definition]).encode())
        return digest.hexdigest()[:16]


def carve_dev(
    items: list[BenchmarkItem], test_prompts: list[str], size: int, seed: int = 0
) -> tuple[list[BenchmarkItem], list[BenchmarkItem]]:
    """(dev, the rest): a seeded slice of `size` items of a training split to choose iterations on,
    none of whose prompts trips the decontamination gate against the test prompts (those stay in
    the rest).  Training never sees the dev items: the caller trains on the rest only, and the
    dataset stage quarantines any training row that repeats a dev prompt."""
    from internflow.data.decontamination import EvalIndex

    gate = EvalIndex(test_prompts)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    dev_at = [i for i in order if not gate.is_contaminated(items[i].question)][:size]
    chosen = set(dev_at)
    return [items[i] for i in sorted(dev_at)], [item for i, item in enumerate(items) if i not in chosen]


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
