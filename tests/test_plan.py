"""The planning stage's artifacts: the planner log table and a proposal the campaign did not run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from internflow.agent.digest import records_from_results
from internflow.narration import params_summary
from internflow.schemas import IterationParams, Proposal
from internflow.tasks.plan import planner_log_markdown
from tests.sample_report import sample_report
from tests.test_markdown import rendered_cells


def test_planner_log_keeps_proposal_why_guard_and_outcome_in_their_columns(tmp_path: Path) -> None:
    """Regression: the `|` in a proposal's signature split the row, so why, guard and outcome never showed
    (and the signature, one unbreakable code span, pushed them out of sight: the summary wraps)."""
    report = sample_report(str(tmp_path))
    records = records_from_results(report.iterations, report.failures)
    pending = Proposal(params=IterationParams(learning_rate=5e-4), rationale="raise <lr> | again")
    rows = rendered_cells(planner_log_markdown(records, pending, report.baseline.accuracy))
    assert rows == [
        ["1", "74.0% (improved, +47.5 pt)", "accept", params_summary(report.iterations[0].params),
         "why 1: loss still falling | try it"],
        ["2", "67.0% (improved, +40.5 pt)", "accept", params_summary(report.iterations[1].params),
         "why 2: loss still falling | try it"],
        ["3", "failed: TrainingFailed: out of memory", "accept", params_summary(report.failures[0].params), "–"],
        ["4", "(running)", "accept", params_summary(pending.params), "raise <lr> | again"],
    ]  # fmt: skip


def test_a_proposal_refused_by_the_budget_is_marked_not_run(prefect_harness) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from internflow.tasks.plan import withdraw_proposal

    @flow
    def refused() -> str:
        from prefect.runtime import flow_run

        withdraw_proposal(4, Proposal(params=IterationParams(), rationale="more steps"), "time budget: 3 min left")
        return str(flow_run.id)

    run_id = refused()
    APILogHandler().flush()  # logs reach the API in batches

    async def read() -> tuple[list, list]:
        async with get_client() as client:
            ids = ArtifactFilterFlowRunId(any_=[run_id])
            artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ids))
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            return artifacts, logs

    artifacts, logs = asyncio.run(read())
    (proposal,) = [a for a in artifacts if a.key == "proposal"]
    assert str(proposal.data).startswith("## Not run: proposal for iteration 4")
    assert "time budget: 3 min left" in str(proposal.data) and "Not run" in (proposal.description or "")
    assert any("proposal for iteration 4 not run: time budget: 3 min left" in log.message for log in logs)
