"""Which items an evaluation answers and how its answers are scored: a seeded subset of a split,
accuracy with n and a 95 % Wilson interval, and a result re-scored on its first items so that two
scores compared are scores on the same items."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from internflow.benchmarks import Benchmark, BenchmarkItem, Split
from internflow.diagnostics import load_samples
from internflow.schemas import EvalResult

__all__ = ["on_first_items", "scores", "select_items", "wilson_interval"]


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval: honest at small n and near 0 or 1, unlike the normal approximation."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def select_items(benchmark: Benchmark, limit: int | None, seed: int, split: Split = "test") -> list[BenchmarkItem]:
    """The first `limit` items of a seeded shuffle of `split` (all of them for None): the same
    items for every iteration, and a smaller limit gives a prefix of a larger one, so a screened
    iteration's items are among the baseline's."""
    items = benchmark.load(split)
    random.Random(seed).shuffle(items)
    return items if limit is None else items[:limit]


def on_first_items(result: EvalResult, n: int) -> EvalResult:
    """`result` re-scored on its first `n` items (those a screened iteration was scored on), from its
    per-sample file, so that two scores compared are scores on the same items."""
    if n >= result.n:
        return result
    samples_file = Path(result.samples_path)
    if not samples_file.is_file():
        raise FileNotFoundError(
            f"samples_path: {samples_file} is missing, so {result.label} cannot be re-scored on its first {n} items"
        )
    return result.model_copy(update={"label": f"{result.label}[:{n}]", **scores(load_samples(samples_file)[:n])})


def scores(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy with n, its 95 % Wilson interval, the unparseable and over-length counts, from
    per-sample rows (EvalResult's score fields).  An over-length item counts in n, as wrong, and
    not as unparseable."""
    n_correct = sum(1 for s in samples if s["correct"])
    low, high = wilson_interval(n_correct, len(samples))
    return {
        "accuracy": n_correct / len(samples),
        "n": len(samples),
        "n_correct": n_correct,
        "ci_low": low,
        "ci_high": high,
        "unparseable": sum(s["extracted"] is None and not s.get("over_length") for s in samples),
        "over_length": sum(bool(s.get("over_length")) for s in samples),
    }
