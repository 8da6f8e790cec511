"""Detectors that explain an iteration's outcome: name → function from `Evidence` to findings.

Each detector looks at one thing (the loss curve, GRPO's reward spread, the eval samples, ...)
and returns typed `Finding`s with the numbers they rest on and a `direction` the planner can
take.  `run_detectors` runs them in registry order; `verdict_of` turns the findings into the
iteration's verdict.  Failed iterations get their findings from `findings_from_failure`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from internflow.diagnostics.evidence import Evidence, load_samples
from internflow.diagnostics.failures import findings_from_failure, read_failure_file
from internflow.diagnostics.grpo import detect_kl_blowup, detect_length_collapse, detect_reward_collapse
from internflow.diagnostics.loss import detect_loss_health, detect_loss_spikes, find_loss_problems
from internflow.diagnostics.outcome import (
    detect_answer_collapse,
    detect_format_failure,
    detect_overfitting,
    detect_vs_baseline,
    detect_vs_best,
    significant_difference,
)
from internflow.schemas import Finding

__all__ = [
    "DETECTORS",
    "Detector",
    "Evidence",
    "UnknownDetectorError",
    "Verdict",
    "find_loss_problems",
    "findings_from_failure",
    "get_detector",
    "load_samples",
    "read_failure_file",
    "run_detectors",
    "significant_difference",
    "verdict_of",
]

Detector = Callable[[Evidence], list[Finding]]
Verdict = Literal["improved", "no_change", "regressed", "failed"]

# Registry order is report order: training health first, then what the evaluation says.
DETECTORS: dict[str, Detector] = {
    "loss_health": detect_loss_health,
    "loss_spikes": detect_loss_spikes,
    "reward_collapse": detect_reward_collapse,
    "kl_blowup": detect_kl_blowup,
    "length_collapse": detect_length_collapse,
    "format_failure": detect_format_failure,
    "answer_collapse": detect_answer_collapse,
    "overfitting": detect_overfitting,
    "vs_baseline": detect_vs_baseline,
    "vs_best": detect_vs_best,
}


class UnknownDetectorError(ValueError):
    pass


def get_detector(name: str) -> Detector:
    if name not in DETECTORS:
        raise UnknownDetectorError(f"detector: unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name]


def run_detectors(evidence: Evidence, names: Iterable[str] | None = None) -> tuple[Finding, ...]:
    """Every registered detector (or the named ones), each finding stamped with its detector."""
    findings: list[Finding] = []
    for name in DETECTORS if names is None else names:
        findings += [f.model_copy(update={"detector": name}) for f in get_detector(name)(evidence)]
    return tuple(findings)


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """A NaN loss fails the iteration whatever its score; otherwise the comparison with the baseline."""
    kinds = {f.kind for f in findings}
    if "nan_loss" in kinds:
        return "failed"
    if "improved" in kinds:
        return "improved"
    if "no_change" in kinds:
        return "no_change"
    if "regressed" in kinds:
        return "regressed"
    return "failed"  # no score to compare (no evaluation): nothing to credit the iteration with
