"""Decontamination gate: training rows whose prompt repeats the campaign's eval set are blocked,
and a dataset with too many of them is blocked whole.

Text is normalized (lower-cased, split into words, numbers and single punctuation marks) and
compared as word n-grams.  A row is contaminated when at least `row_threshold` of its prompt's
n-grams occur in the eval prompts; prompts shorter than `ngram` words are compared whole.  The
prompt side is what an eval item asks, so that is where a leak shows; templated prompts (every
arithmetic item shares "state the final answer to the following arithmetic problem") share some
n-grams by design, which is why the default threshold is well above what a template alone reaches.
A handful of coincidental matches is expected in any large synthetic set, so a whole dataset is
blocked only at `dataset_block_ratio` and at least `min_rows_to_block` matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ContaminationReport", "DecontaminationConfig", "EvalIndex", "normalized_tokens"]

_TOKEN = re.compile(r"\w+|[^\w\s]")

Gram = tuple[str, ...]


class DecontaminationConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ngram: int = Field(8, ge=1, le=64, description="Words per n-gram.")
    row_threshold: float = Field(
        0.8, gt=0, le=1, description="Share of a row's prompt n-grams found in the eval set that blocks the row."
    )
    dataset_block_ratio: float = Field(
        0.1, gt=0, le=1, description="Share of contaminated rows at which the whole dataset is blocked."
    )
    min_rows_to_block: int = Field(5, ge=1, description="Fewer contaminated rows than this never block a dataset.")


def normalized_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _grams(tokens: list[str], n: int) -> set[Gram]:
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return set(zip(*(tokens[i:] for i in range(n)), strict=False))


class EvalIndex:
    """The n-grams of every eval prompt, for fast membership tests."""

    def __init__(self, eval_prompts: Iterable[str], config: DecontaminationConfig | None = None) -> None:
        self.config = config or DecontaminationConfig()
        self.grams: set[Gram] = set()
        self.items = 0
        n = self.config.ngram
        for prompt in eval_prompts:
            tokens = normalized_tokens(prompt)
            self.grams |= _grams(tokens, n)
            # A short training prompt is compared whole: index every window of short lengths too.
            for size in range(1, min(n, len(tokens) + 1)):
                self.grams.update(zip(*(tokens[i:] for i in range(size)), strict=False))
            self.items += 1

    def overlap(self, prompt: str) -> float:
        """Share of the prompt's n-grams that occur in the eval set (0 for an empty prompt)."""
        grams = _grams(normalized_tokens(prompt), self.config.ngram)
        return len(grams & self.grams) / len(grams) if grams else 0.0

    def is_contaminated(self, prompt: str) -> bool:
        return self.overlap(prompt) >= self.config.row_threshold


class ContaminationReport(BaseModel):
    """What the gate found in one dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str
    rows_checked: int
    contaminated_rows: int
    ratio: float
    blocked: bool
    reason: str
    examples: tuple[str, ...] = ()  # a few contaminated prompts, as evidence

    @classmethod
    def judge(
        cls, dataset: str, rows_checked: int, contaminated: list[str], config: DecontaminationConfig
    ) -> ContaminationReport:
        ratio = len(contaminated) / rows_checked if rows_checked else 0.0
        blocked = len(contaminated) >= config.min_rows_to_block and ratio >= config.dataset_block_ratio
        if blocked:
            reason = (
                f"{len(contaminated)} of {rows_checked} rows ({ratio:.1%}) repeat eval prompts, at or above "
                f"the {config.dataset_block_ratio:.0%} block ratio: the whole dataset is blocked"
            )
        elif contaminated:
            reason = (
                f"{len(contaminated)} of {rows_checked} rows ({ratio:.1%}) repeat eval prompts: those rows are blocked"
            )
        else:
            reason = "no row repeats an eval prompt"
        return cls(
            dataset=dataset,
            rows_checked=rows_checked,
            contaminated_rows=len(contaminated),
            ratio=ratio,
            blocked=blocked,
            reason=reason,
            examples=tuple(contaminated[:3]),
        )
