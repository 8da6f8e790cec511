"""Diagnose stage: gather an iteration's evidence (its TrainResult, the metric curves trackio holds
for its run, its eval samples and the scores to compare with), run every registered detector
(`internflow.diagnostics`) and return the verdict with typed findings, each with a direction the
planner can take next.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from internflow.diagnostics import (
    Evidence,
    find_loss_problems,
    load_samples,
    run_detectors,
    significant_difference,
    verdict_of,
)
from internflow.diagnostics.trackio_metrics import read_run_metrics
from internflow.schemas import Diagnosis, EvalResult, Finding, TrainResult

__all__ = ["diagnose_iteration", "find_loss_problems", "gather_evidence", "significant_difference"]


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a flow or task run
        return logging.getLogger(__name__)


def gather_evidence(
    train: TrainResult,
    evaluation: EvalResult,
    baseline: EvalResult,
    best: EvalResult | None,
    start: EvalResult | None = None,
    trackio_dir: str | None = None,
) -> Evidence:
    metrics = read_run_metrics(trackio_dir, train.trackio_project, train.trackio_run) if trackio_dir else {}
    samples_file = Path(evaluation.samples_path)
    if not samples_file.is_file():
        # e.g. an evaluation made on another machine: the detectors fall back to its counts.
        _logger().warning("diagnose: no samples file at %s; using the evaluation's counts", samples_file)
    return Evidence(
        train=train,
        metrics=metrics,
        evaluation=evaluation,
        baseline=baseline,
        best=best,
        start=start or baseline,
        samples=load_samples(samples_file) if samples_file.is_file() else (),
    )


@task(name="diagnose", cache_policy=NO_CACHE)
def diagnose_iteration(
    train: TrainResult,
    evaluation: EvalResult,
    baseline: EvalResult,
    best: EvalResult | None,
    start: EvalResult | None = None,
    trackio_dir: str | None = None,
) -> Diagnosis:
    """`start`: the evaluation of the model training began from (default: the baseline);
    `trackio_dir`: the workspace's trackio folder holding the run's curves (default: the
    TrainResult's own loss and reward history only)."""
    evidence = gather_evidence(train, evaluation, baseline, best, start, trackio_dir)
    findings = run_detectors(evidence)
    gain = evaluation.accuracy - baseline.accuracy
    diagnosis = Diagnosis(
        verdict=verdict_of(findings),
        gain_vs_baseline=gain,
        gain_vs_best=None if best is None else evaluation.accuracy - best.accuracy,
        findings=findings,
    )
    _publish(diagnosis, evaluation)
    return diagnosis


def _line(finding: Finding) -> str:
    numbers = ", ".join(f"{k}={v:.4g}" for k, v in finding.evidence.items())
    steps = f" steps {list(finding.steps)}" if finding.steps else ""
    hint = f" → {finding.suggestion}" if finding.suggestion else ""
    direction = f" `[{finding.direction}]`" if finding.direction else ""
    evidence = f"  \n  evidence: {numbers}{steps}" if numbers or steps else ""
    return (
        f"- **{finding.kind}** ({finding.severity}, {finding.detector}): {finding.message}{hint}{direction}{evidence}"
    )


def _publish(diagnosis: Diagnosis, evaluation: EvalResult) -> None:
    create_markdown_artifact(
        key="diagnosis",
        markdown=(
            f"## Verdict: {diagnosis.verdict}\n\nGain vs baseline: {diagnosis.gain_vs_baseline:+.1%} "
            f"(accuracy {evaluation.accuracy:.1%}, n={evaluation.n})\n\n" + "\n".join(map(_line, diagnosis.findings))
        ),
        description=f"{diagnosis.verdict} ({diagnosis.gain_vs_baseline:+.1%} vs baseline)",
    )
