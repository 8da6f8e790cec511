"""The diagnose stage's verdict: typed findings, each with the direction it suggests to the planner."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from internflow.schemas.base import Frozen

__all__ = ["Diagnosis", "Direction", "Finding", "FindingKind"]


FindingKind = Literal[
    "nan_loss",
    "divergence",
    "no_learning",
    "format_failure",
    "answer_collapse",
    "improved",
    "no_change",
    "regressed",
    "loss_spike",
    "overfitting",
    "reward_collapse",
    "kl_blowup",
    "length_collapse",
    "regressed_vs_best",
    "out_of_memory",
    "disk_full",
    "train_failed",
    "stage_failed",
]

# What the planner can do about a finding: one step in parameter space, or a change of course.
Direction = Literal[
    "lower_lr",
    "raise_lr",
    "more_steps",
    "fewer_steps",
    "change_data",
    "fix_format",
    "raise_beta",
    "use_lora",
    "switch_method",
    "return_to_best",
    "change_direction",
    "keep_direction",
]


class Finding(Frozen):
    kind: FindingKind
    severity: Literal["info", "warning", "error"]
    message: str
    suggestion: str = ""
    direction: Direction | None = Field(None, description="The planner's next move, as a structured hint.")
    evidence: dict[str, float] = Field(default_factory=dict, description="The numbers the finding rests on.")
    steps: tuple[int, ...] = Field((), description="Training steps where it shows.")
    detector: str = Field("", description="Registered detector (internflow.diagnostics) that produced it.")


class Diagnosis(Frozen):
    verdict: Literal["improved", "no_change", "regressed", "failed"]
    gain_vs_baseline: float
    gain_vs_best: float | None
    findings: tuple[Finding, ...]
