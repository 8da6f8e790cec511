"""GRPO detectors, on the metrics TRL's GRPOTrainer logs: reward spread within each prompt's group
(reward_std), the KL to the reference model, and the mean completion length."""

from __future__ import annotations

import math

from internflow.diagnostics.evidence import KL, MEAN_LENGTH, REWARD, REWARD_STD, Evidence, finite, window_means
from internflow.schemas import Finding

__all__ = ["detect_kl_blowup", "detect_length_collapse", "detect_reward_collapse"]

REWARD_STD_FLOOR = 0.05  # late group reward std below this → the advantages are ~0, no learning signal
KL_LIMIT = 1.0  # late mean KL (nats per token) above this → the policy left the reference behind
LENGTH_COLLAPSE_RATIO = 0.25  # late mean completion length below this share of the early one ...
REWARD_RISE = 0.05  # ... while the mean reward rose by less than this → degenerate, not concise


def detect_reward_collapse(evidence: Evidence) -> list[Finding]:
    std = finite(evidence.curve(REWARD_STD))
    if not std:
        return []
    early, late, window = window_means(std)
    if late >= REWARD_STD_FLOOR:
        return []
    reward = finite(evidence.curve(REWARD))
    late_reward = window_means(reward)[1] if reward else math.nan
    numbers = {"early_reward_std": early, "late_reward_std": late, "late_reward": late_reward}
    return [
        Finding(
            kind="reward_collapse",
            severity="error",
            message=(
                f"reward spread within groups collapsed: std {early:.3f} → {late:.3f} over the last {window} "
                f"logged steps (mean reward {late_reward:.3f}); every completion of a prompt scores alike, so "
                "GRPO's advantages are zero"
            ),
            suggestion=(
                "use prompts of a difficulty the model sometimes solves, or more generations per prompt, "
                "or a graded reward"
            ),
            direction="change_data",
            evidence=numbers,
            steps=(std[-window][0], std[-1][0]),
        )
    ]


def detect_kl_blowup(evidence: Evidence) -> list[Finding]:
    curve = evidence.curve(KL)  # logged only when beta > 0
    if not curve:
        return []
    bad = [step for step, value in curve if not math.isfinite(value)]
    measured = finite(curve)
    late = window_means(measured)[1] if measured else math.inf
    if not bad and late <= KL_LIMIT:
        return []
    peak_step, peak = max(measured, key=lambda p: p[1]) if measured else (bad[0], math.inf)
    return [
        Finding(
            kind="kl_blowup",
            severity="error",
            message=(
                f"KL to the reference model blew up: late mean {late:.3f} (limit {KL_LIMIT}), peak {peak:.3f} at "
                f"step {peak_step}" + (f"; non-finite from step {bad[0]}" if bad else "")
            ),
            suggestion="raise beta (the pull towards the reference) or lower the learning rate",
            direction="raise_beta",
            evidence={"late_kl": late, "peak_kl": peak, "limit": KL_LIMIT, "non_finite_steps": len(bad)},
            steps=(peak_step, *bad[:1]),
        )
    ]


def detect_length_collapse(evidence: Evidence) -> list[Finding]:
    lengths = finite(evidence.curve(MEAN_LENGTH))
    if len(lengths) < 2:
        return []
    early, late, window = window_means(lengths)
    if early <= 0 or late >= LENGTH_COLLAPSE_RATIO * early:
        return []
    reward = finite(evidence.curve(REWARD))
    early_reward, late_reward, _ = window_means(reward) if reward else (math.nan, math.nan, 1)
    if reward and late_reward - early_reward >= REWARD_RISE:
        return []  # shorter and better: the model learned to answer concisely
    return [
        Finding(
            kind="length_collapse",
            severity="error",
            message=(
                f"completions collapsed: mean length {early:.1f} → {late:.1f} tokens while the mean reward went "
                f"{early_reward:.3f} → {late_reward:.3f}"
            ),
            suggestion="lower the learning rate or raise beta; check that no reward pays for short output",
            direction="lower_lr",
            evidence={
                "early_mean_length": early,
                "late_mean_length": late,
                "early_reward": early_reward,
                "late_reward": late_reward,
            },
            steps=(lengths[-window][0], lengths[-1][0]),
        )
    ]
