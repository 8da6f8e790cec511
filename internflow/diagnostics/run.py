"""The diagnose stage's work: a DiagnoseRequest (the iteration's TrainResult, its evaluation and the
scores to compare with) → its evidence (the run's trackio curves, the eval samples) → every
registered detector → the Diagnosis (verdict, gains, typed findings)."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from internflow.diagnostics import Evidence, load_samples, run_detectors, verdict_of
from internflow.diagnostics.trackio_metrics import read_run_metrics
from internflow.narration import run_logger
from internflow.schemas import Diagnosis, EvalResult, Finding, TrainResult

__all__ = ["DiagnoseRequest", "diagnosis_markdown", "gather_evidence", "run_diagnosis"]

logger = logging.getLogger(__name__)


class DiagnoseRequest(BaseModel):
    """One iteration's diagnosis: what it trained, how it scored, and the scores to compare with
    (all on the same items)."""

    # NaN losses are evidence (a `nan_loss` finding): keep them through JSON round trips.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    train: TrainResult
    evaluation: EvalResult
    baseline: EvalResult = Field(description="The base model's evaluation.")
    best: EvalResult | None = Field(None, description="The best iteration's evaluation so far; None before one.")
    start: EvalResult | None = Field(
        None, description="The evaluation of the model training began from; None: the baseline."
    )
    trackio_dir: str | None = Field(
        None,
        description="The workspace's trackio folder holding the run's curves; None: the TrainResult's own "
        "loss and reward history only.",
    )


def gather_evidence(request: DiagnoseRequest) -> Evidence:
    """What the detectors read: the request's results, every metric trackio holds for the run (none
    without a trackio folder) and the evaluation's samples (none when its file is not here)."""
    train, evaluation = request.train, request.evaluation
    metrics = (
        read_run_metrics(request.trackio_dir, train.trackio_project, train.trackio_run) if request.trackio_dir else {}
    )
    samples_file = Path(evaluation.samples_path)
    if not samples_file.is_file():
        # e.g. an evaluation made on another machine: the detectors fall back to its counts.
        run_logger(logger).warning("diagnose: no samples file at %s; using the evaluation's counts", samples_file)
    return Evidence(
        train=train,
        metrics=metrics,
        evaluation=evaluation,
        baseline=request.baseline,
        best=request.best,
        start=request.start or request.baseline,
        samples=load_samples(samples_file) if samples_file.is_file() else (),
    )


def run_diagnosis(request: DiagnoseRequest) -> Diagnosis:
    """Every registered detector on the request's evidence; the verdict and the accuracy gains
    (fractions, e.g. 0.03 = 3 points) over the baseline and the best so far."""
    findings = run_detectors(gather_evidence(request))
    accuracy, best = request.evaluation.accuracy, request.best
    return Diagnosis(
        verdict=verdict_of(findings),
        gain_vs_baseline=accuracy - request.baseline.accuracy,
        gain_vs_best=None if best is None else accuracy - best.accuracy,
        findings=findings,
    )


def diagnosis_markdown(diagnosis: Diagnosis, evaluation: EvalResult) -> str:
    """The `diagnosis` artifact: the verdict, the gain over the baseline, one line per finding."""
    return (
        f"## Verdict: {diagnosis.verdict}\n\nGain vs baseline: {diagnosis.gain_vs_baseline:+.1%} "
        f"(accuracy {evaluation.accuracy:.1%}, n={evaluation.n})\n\n" + "\n".join(map(_line, diagnosis.findings))
    )


def _line(finding: Finding) -> str:
    numbers = ", ".join(f"{k}={v:.4g}" for k, v in finding.evidence.items())
    steps = f" steps {list(finding.steps)}" if finding.steps else ""
    hint = f" → {finding.suggestion}" if finding.suggestion else ""
    direction = f" `[{finding.direction}]`" if finding.direction else ""
    evidence = f"  \n  evidence: {numbers}{steps}" if numbers or steps else ""
    return (
        f"- **{finding.kind}** ({finding.severity}, {finding.detector}): {finding.message}{hint}{direction}{evidence}"
    )
