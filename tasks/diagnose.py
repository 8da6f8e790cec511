"""Diagnose stage: a DiagnoseRequest — an iteration's TrainResult, its evaluation and the scores to
compare with — diagnosed by the library (`internflow.diagnostics.run`: the metric curves trackio
holds for its run and its eval samples, every registered detector); the verdict with typed
findings, each with a direction the planner can take next, shown as the `diagnosis` artifact.
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from internflow.diagnostics.run import DiagnoseRequest, diagnosis_markdown, run_diagnosis
from internflow.schemas import Diagnosis

__all__ = ["diagnose_iteration"]


@task(name="diagnose", cache_policy=NO_CACHE)
def diagnose_iteration(request: DiagnoseRequest) -> Diagnosis:
    """Run every registered detector on the iteration's evidence; returns the Diagnosis (verdict,
    gains over the baseline and the best, findings) and publishes the `diagnosis` artifact."""
    diagnosis = run_diagnosis(request)
    create_markdown_artifact(
        key="diagnosis",
        markdown=diagnosis_markdown(diagnosis, request.evaluation),
        description=f"{diagnosis.verdict} ({diagnosis.gain_vs_baseline:+.1%} vs baseline)",
    )
    return diagnosis
