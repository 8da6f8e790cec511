"""What the detectors look at: one iteration's training result, its logged metric curves, its
evaluation with per-sample outputs, and the scores it is compared with."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from internflow.schemas import EvalResult, LossPoint, TrainResult

__all__ = ["Curve", "Evidence", "finite", "load_samples", "window_means"]

# (step, value) pairs in step order, as the trainer logged them.
Curve = tuple[tuple[int, float], ...]

# Metric names as `TrackioSteps` logs them (transformers' `rewrite_logs` prefixes train/).
LOSS = "train/loss"
REWARD = "train/reward"
REWARD_STD = "train/reward_std"
KL = "train/kl"
MEAN_LENGTH = "train/completions/mean_length"


@dataclass(frozen=True)
class Evidence:
    """Everything a detector may read; any part can be missing (e.g. no eval after a failed run)."""

    train: TrainResult | None = None
    metrics: Mapping[str, Curve] = field(default_factory=dict)
    evaluation: EvalResult | None = None
    baseline: EvalResult | None = None
    best: EvalResult | None = None
    start: EvalResult | None = None  # the model training started from (the baseline, or the best so far)
    samples: tuple[Mapping[str, Any], ...] = ()

    def curve(self, name: str) -> Curve:
        """A logged metric, from trackio when it has it, else from the TrainResult's own history."""
        if self.metrics.get(name):
            return tuple(self.metrics[name])
        if self.train is not None and name in (LOSS, REWARD):
            points: tuple[LossPoint, ...] = self.train.losses if name == LOSS else self.train.rewards
            return tuple((p.step, p.loss) for p in points)
        return ()

    @property
    def is_grpo(self) -> bool:
        # GRPO's loss is a policy-gradient surrogate near zero, not a measure of progress.
        return bool(self.curve(REWARD))

    @property
    def loss_is_finite(self) -> bool:
        return all(math.isfinite(v) for _, v in self.curve(LOSS))


def finite(curve: Curve) -> Curve:
    return tuple((s, v) for s, v in curve if math.isfinite(v))


def window_means(curve: Curve) -> tuple[float, float, int]:
    """Mean of the first and of the last fifth of the curve, and the window length."""
    values = [v for _, v in curve]
    window = max(1, len(values) // 5)
    return fmean(values[:window]), fmean(values[-window:]), window


def load_samples(path: str | Path) -> tuple[dict[str, Any], ...]:
    """The evaluate stage's per-sample JSONL (prompt, output, extracted, expected, correct)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or "extracted" not in row or "correct" not in row:
            raise ValueError(f"samples: {path} line {number}: expected an object with 'extracted' and 'correct'")
        rows.append(row)
    return tuple(rows)
