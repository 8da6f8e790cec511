"""Evaluation detectors: answer-format failures, one answer given to every item, overfitting,
and the comparisons with the baseline and with the best iteration, each judged against sampling noise."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from internflow.diagnostics.evidence import LOSS, REWARD, Evidence, finite, window_means
from internflow.diagnostics.grpo import REWARD_RISE
from internflow.diagnostics.loss import NO_LEARNING_RATIO
from internflow.schemas import EvalResult, Finding

__all__ = [
    "detect_answer_collapse",
    "detect_format_failure",
    "detect_overfitting",
    "detect_vs_baseline",
    "detect_vs_best",
    "most_given_answer",
    "significant_difference",
]

FORMAT_FAILURE_SHARE = 0.2  # more unparseable answers than this → format problem
COLLAPSE_SHARE = 0.9  # one answer given to at least this share of the items → collapsed
COLLAPSE_MIN_ITEMS = 20  # fewer samples than this say little about how varied the answers are
_EXAMPLES = 2


def significant_difference(a: EvalResult, b: EvalResult, z: float = 1.96) -> bool:
    """Two-proportion z-test: is a's accuracy different from b's beyond sampling noise (95 %)?"""
    pooled = (a.n_correct + b.n_correct) / (a.n + b.n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.n + 1 / b.n))
    return se > 0 and abs(a.accuracy - b.accuracy) / se > z


def _score(result: EvalResult) -> str:
    return f"{result.accuracy:.1%} [{result.ci_low:.1%}, {result.ci_high:.1%}] (n={result.n})"


def detect_format_failure(evidence: Evidence) -> list[Finding]:
    evaluation = evidence.evaluation
    if evaluation is None or not evaluation.n:
        return []
    # A prompt over the model's context was never answered: not a format problem.
    unparseable_rows = [s for s in evidence.samples if s.get("extracted") is None and not s.get("over_length")]
    # The per-sample file is the evidence when there is one; the counts stand in otherwise.
    n = len(evidence.samples) or evaluation.n
    unparseable = len(unparseable_rows) if evidence.samples else evaluation.unparseable
    if unparseable / n <= FORMAT_FAILURE_SHARE:
        return []
    examples = "; ".join(repr(str(s.get("output", ""))[:60]) for s in unparseable_rows[:_EXAMPLES])
    return [
        Finding(
            kind="format_failure",
            severity="warning",
            message=f"{unparseable}/{n} answers had no extractable answer" + (f", e.g. {examples}" if examples else ""),
            suggestion="train on data whose answers follow the benchmark's answer format",
            direction="fix_format",
            evidence={"unparseable": unparseable, "n": n, "share": unparseable / n},
        )
    ]


def most_given_answer(samples: Sequence[Mapping[str, Any]]) -> tuple[str, int, int] | None:
    """The answer given most often in eval samples (extracted, stripped; an empty capture is no
    answer), how many items were given it, and on how many of those the judge accepted it.  None
    when no item was answered."""
    given = [(str(s.get("extracted") or "").strip(), bool(s.get("correct"))) for s in samples]
    counts = Counter(answer for answer, _ in given if answer)
    if not counts:
        return None
    answer, times = counts.most_common(1)[0]
    return answer, times, sum(correct for a, correct in given if a == answer)


def detect_answer_collapse(evidence: Evidence) -> list[Finding]:
    """The model gives one answer to nearly every item, and the judge rejects it on many of them (the
    items' answers vary): its score is the share of items whose answer that is (the answers' prior,
    e.g. always "15" on a task whose answers are counts that are 15 for about one item in six), not
    the task.  SFT on final answers alone can end here when the task needs steps the model cannot
    take in one token.  The judge's own verdicts decide which items that answer is right for (case,
    number formats), so a task whose items nearly all share one answer is no collapse."""
    most = most_given_answer(evidence.samples)
    if len(evidence.samples) < COLLAPSE_MIN_ITEMS or most is None:
        return []
    n, (answer, given, from_answer) = len(evidence.samples), most
    if given / n < COLLAPSE_SHARE or from_answer / given >= COLLAPSE_SHARE:
        return []  # varied answers, or one answer that is right for nearly every item given it
    right = sum(bool(s.get("correct")) for s in evidence.samples) / n
    return [
        Finding(
            kind="answer_collapse",
            severity="warning",
            message=(
                f"answers {answer!r} to {given} of {n} items: of its {right:.1%}, {from_answer / n:.1%} are items "
                f"whose answer is {answer!r} — it learnt the answers' prior, not the task"
            ),
            suggestion=(
                "train on answers that show their working (steps the judge still reads) or other data; "
                "more steps or a higher learning rate on these rows tend to teach the same prior"
            ),
            direction="change_data",
            evidence={"given": given, "n": n, "share": given / n, "prior": from_answer / n, "accuracy": right},
        )
    ]


def _training_signal_improved(evidence: Evidence) -> tuple[str, float, float] | None:
    """(metric, early, late) when the training metric moved the right way, else None."""
    name = REWARD if evidence.is_grpo else LOSS
    curve = evidence.curve(name)
    if len(curve) < 2 or len(finite(curve)) != len(curve):
        return None
    early, late, _ = window_means(curve)
    improved = late - early >= REWARD_RISE if evidence.is_grpo else late < NO_LEARNING_RATIO * early
    return (name, early, late) if improved else None


def detect_overfitting(evidence: Evidence) -> list[Finding]:
    """The training metric improved while the held-out score fell below the starting model's."""
    evaluation, start = evidence.evaluation, evidence.start or evidence.baseline
    if evaluation is None or start is None or evaluation.accuracy >= start.accuracy:
        return []
    signal = _training_signal_improved(evidence)
    if signal is None or not significant_difference(evaluation, start):
        return []
    name, early, late = signal
    return [
        Finding(
            kind="overfitting",
            severity="warning",
            message=(
                f"{name} went {early:.3f} → {late:.3f} while accuracy fell from {_score(start)} "
                f"({start.label}) to {_score(evaluation)}"
            ),
            suggestion="train fewer steps or on more varied data"
            + (" (the reward is being gamed)" if evidence.is_grpo else ""),
            direction="fewer_steps",
            evidence={
                "train_early": early,
                "train_late": late,
                "start_accuracy": start.accuracy,
                "accuracy": evaluation.accuracy,
            },
        )
    ]


def detect_vs_baseline(evidence: Evidence) -> list[Finding]:
    evaluation, baseline = evidence.evaluation, evidence.baseline
    if evaluation is None or baseline is None or not evidence.loss_is_finite:
        return []  # a run whose loss went NaN has no score worth comparing
    gain = evaluation.accuracy - baseline.accuracy
    numbers = {"gain": gain, "accuracy": evaluation.accuracy, "baseline": baseline.accuracy, "n": evaluation.n}
    if not significant_difference(evaluation, baseline):
        return [
            Finding(
                kind="no_change",
                severity="info",
                message=f"{gain:+.1%} vs baseline is inside the noise (n={evaluation.n})",
                suggestion="change direction: other data, method or learning-rate region",
                direction="change_direction",
                evidence=numbers,
            )
        ]
    if gain > 0:
        return [
            Finding(
                kind="improved",
                severity="info",
                message=f"{gain:+.1%} vs baseline",
                direction="keep_direction",
                evidence=numbers,
            )
        ]
    return [
        Finding(
            kind="regressed",
            severity="warning",
            message=f"{gain:+.1%} vs baseline",
            suggestion="lower the learning rate or change the data",
            direction="lower_lr",
            evidence=numbers,
        )
    ]


def detect_vs_best(evidence: Evidence) -> list[Finding]:
    """Significantly below the best iteration while not below the baseline (that is `regressed`)."""
    evaluation, best, baseline = evidence.evaluation, evidence.best, evidence.baseline
    if evaluation is None or best is None or not evidence.loss_is_finite:
        return []
    below_baseline = baseline is not None and evaluation.accuracy < baseline.accuracy
    if below_baseline or evaluation.accuracy >= best.accuracy or not significant_difference(evaluation, best):
        return []
    return [
        Finding(
            kind="regressed_vs_best",
            severity="warning",
            message=f"{_score(evaluation)} is below the best iteration's {_score(best)} beyond the noise",
            suggestion="go back to the best iteration's settings (or continue from its model) and change one thing",
            direction="return_to_best",
            evidence={"gain_vs_best": evaluation.accuracy - best.accuracy, "best": best.accuracy},
        )
    ]
