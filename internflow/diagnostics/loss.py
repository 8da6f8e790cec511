"""Training-loss detectors: non-finite loss, divergence, no learning, and isolated spikes."""

from __future__ import annotations

import math
from statistics import fmean, median

from internflow.diagnostics.evidence import LOSS, Curve, Evidence, window_means
from internflow.schemas import Finding, LossPoint

__all__ = ["detect_loss_health", "detect_loss_spikes", "find_loss_problems"]

DIVERGENCE_RATIO = 1.5  # late loss this many times the best earlier loss → diverged
NO_LEARNING_RATIO = 0.95  # late loss above this share of the early loss → barely learned
SPIKE_RATIO = 2.0  # a spike is at least this many times the median of the steps before it ...
SPIKE_GIVE_BACK = 0.5  # ... and gives back at least this share of the progress made so far
SPIKE_CONTEXT = 5  # steps before a point that set its local level


def find_loss_problems(losses: tuple[LossPoint, ...]) -> list[Finding]:
    """NaN/inf, divergence or a flat curve, judged on the training loss alone."""
    return _loss_findings(tuple((p.step, p.loss) for p in losses), progress_measure=True)


def detect_loss_health(evidence: Evidence) -> list[Finding]:
    if evidence.train is None and not evidence.metrics:
        return []  # nothing trained (e.g. a baseline-only diagnosis)
    return _note_resume(_loss_findings(evidence.curve(LOSS), progress_measure=not evidence.is_grpo), evidence)


def _note_resume(findings: list[Finding], evidence: Evidence) -> list[Finding]:
    """A curve that was resumed from a checkpoint says so: a problem right after it may be the resume's."""
    resumed = evidence.train.resumed_from_step if evidence.train is not None else None
    if resumed is None:
        return findings
    return [
        f.model_copy(
            update={
                "message": f"{f.message} (run resumed from step {resumed})",
                "evidence": {**f.evidence, "resumed_from_step": resumed},
            }
        )
        for f in findings
    ]


def _loss_findings(curve: Curve, *, progress_measure: bool) -> list[Finding]:
    if not curve:
        return [
            Finding(
                kind="no_learning",
                severity="error",
                message="no training loss was logged",
                suggestion="check the training data and max_steps",
                direction="change_data",
            )
        ]
    bad = [step for step, value in curve if not math.isfinite(value)]
    if bad:
        return [
            Finding(
                kind="nan_loss",
                severity="error",
                message=f"loss became non-finite at step {bad[0]} ({len(bad)} of {len(curve)} logged steps)",
                suggestion="lower the learning rate (÷4) or use LoRA",
                direction="lower_lr",
                evidence={"first_bad_step": bad[0], "bad_steps": len(bad), "logged_steps": len(curve)},
                steps=(bad[0],),
            )
        ]
    if not progress_measure:
        return []
    values = [v for _, v in curve]
    early, late, window = window_means(curve)
    starts = range(len(values) - window + 1)
    best_start = min(starts, key=lambda i: fmean(values[i : i + window]))
    best_before_end = fmean(values[best_start : best_start + window])
    if late > DIVERGENCE_RATIO * best_before_end:
        return [
            Finding(
                kind="divergence",
                severity="error",
                message=f"loss diverged: late mean {late:.3f} vs best window {best_before_end:.3f}",
                suggestion="lower the learning rate (÷3)",
                direction="lower_lr",
                evidence={"late_mean": late, "best_window_mean": best_before_end, "early_mean": early},
                steps=(curve[best_start][0], curve[-1][0]),
            )
        ]
    if late > NO_LEARNING_RATIO * early:
        return [
            Finding(
                kind="no_learning",
                severity="warning",
                message=f"loss barely moved: {early:.3f} → {late:.3f}",
                suggestion="raise the learning rate or train for more steps",
                direction="raise_lr",
                evidence={"early_mean": early, "late_mean": late},
            )
        ]
    return []


def detect_loss_spikes(evidence: Evidence) -> list[Finding]:
    """Isolated jumps that give back much of the progress made, in a curve that then recovers.

    Small-batch SFT curves are noisy (a 1.5× step-to-step bounce is normal), so a spike must be
    both large against the local level and large against how far the loss had come down.
    """
    curve = evidence.curve(LOSS)
    if evidence.is_grpo or len(curve) <= SPIKE_CONTEXT or not evidence.loss_is_finite:
        return []
    if _loss_findings(curve, progress_measure=True):
        return []  # a diverged or flat curve is reported as that, not as spikes
    start = curve[0][1]
    spikes: list[tuple[int, float, float]] = []
    for i in range(SPIKE_CONTEXT, len(curve)):
        step, value = curve[i]
        level = median(v for _, v in curve[i - SPIKE_CONTEXT : i])
        progress = start - level
        if progress > 0 and value >= SPIKE_RATIO * level and value - level >= SPIKE_GIVE_BACK * progress:
            spikes.append((step, value, level))
    if not spikes:
        return []
    worst = max(spikes, key=lambda s: s[1] / s[2])
    return _note_resume(
        [
            Finding(
                kind="loss_spike",
                severity="warning",
                message=(
                    f"{len(spikes)} loss spike(s); worst at step {worst[0]}: {worst[1]:.3f} against a local level of "
                    f"{worst[2]:.3f}"
                ),
                suggestion="lower the learning rate or lengthen the warm-up",
                direction="lower_lr",
                evidence={"spikes": len(spikes), "worst_value": worst[1], "worst_local_level": worst[2]},
                steps=tuple(s[0] for s in spikes),
            )
        ],
        evidence,
    )
