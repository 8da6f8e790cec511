"""Approvals: a campaign above its cost threshold pauses; an answer given through the Prefect API
(as the UI's form does) lets it go on with edited parameters, or stops it cleanly."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from internflow.agent.approval import approval_reason
from internflow.agent.budget import estimate_job
from internflow.schemas import CampaignConfig, CampaignReport


def _config(tiny_model: Path, workspace: Path, **overrides: object) -> CampaignConfig:
    values: dict[str, object] = {
        "model": str(tiny_model),
        "workspace": str(workspace),
        "max_iterations": 1,
        "eval_limit": 8,
        "recipe": "sft/smoke",
        "eval_backend": "transformers",
        "time_budget_minutes": 30,
        "approval_gpu_hours": 0.0,
    }
    return CampaignConfig.model_validate(values | overrides)


def _run_in_background(config: CampaignConfig) -> tuple[threading.Thread, dict]:
    from internflow.flows.campaign import campaign

    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(state=campaign(config, return_state=True)), daemon=True)
    thread.start()
    return thread, box


def _paused_campaign(workspace: Path, timeout_s: float = 180) -> str:
    """The id of the paused campaign run whose parameters point at this workspace."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    async def find() -> str | None:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                )
            )
            mine = [r for r in runs if r.parameters["config"]["workspace"] == str(workspace)]
            return str(mine[0].id) if mine else None

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := asyncio.run(find()):
            return found
        time.sleep(0.5)
    raise AssertionError("the campaign never paused for approval")


def _approval_artifact(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    async def read() -> str:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["approval"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
            return str(found[0].data)

    return asyncio.run(read())


def test_approval_is_needed_above_threshold_or_when_cost_is_unknown(tmp_path: Path) -> None:
    plain = CampaignConfig(workspace=str(tmp_path))
    assert approval_reason(plain, None) is None
    gated = CampaignConfig(workspace=str(tmp_path), approval_gpu_hours=1.0, approval_usd=5.0, gpu_usd_per_hour=4.0)
    assert "unknown" in (approval_reason(gated, None) or "")
    assert approval_reason(gated, estimate_job(1800, "gpu", 4.0)) is None  # 0.5 h, $2
    assert "GPU-hours" in (approval_reason(gated, estimate_job(2 * 3600, "gpu", 1.0)) or "")
    assert "$5.00" in (approval_reason(gated, estimate_job(3600 * 0.9, "gpu", 8.0)) or "")


def test_paused_campaign_continues_with_the_edited_parameters(prefect_harness, tiny_model, tmp_path) -> None:
    from prefect.flow_runs import resume_flow_run

    from internflow.recipes import load_recipe

    monkey = pytest.MonkeyPatch()
    monkey.setenv("INTERNFLOW_OFFLINE", "1")
    try:
        thread, box = _run_in_background(_config(tiny_model, tmp_path))
        run_id = _paused_campaign(tmp_path)
        edited = load_recipe(str(tiny_model), "sft/smoke", ("arithmetic-direct",)).model_copy(update={"max_steps": 3})
        answer = {"decision": "approve", "params": edited.model_dump(mode="json"), "note": "ok"}
        resume_flow_run(run_id, run_input=answer)
        thread.join(timeout=300)
    finally:
        monkey.undo()
    report: CampaignReport = box["state"].result()
    assert [r.params.max_steps for r in report.iterations] == [3]
    assert report.iterations[0].train.steps == 3
    assert "approve (human): ok" in _approval_artifact(run_id)


@pytest.mark.parametrize("answer", ["reject", "timeout"])
def test_rejected_or_unanswered_approval_stops_the_campaign_cleanly(prefect_harness, tiny_model, tmp_path, answer):
    from prefect.flow_runs import resume_flow_run

    overrides = {"approval_timeout_s": 3} if answer == "timeout" else {}
    thread, box = _run_in_background(_config(tiny_model, tmp_path, **overrides))
    run_id = _paused_campaign(tmp_path)
    if answer == "reject":
        resume_flow_run(run_id, run_input={"decision": "reject", "note": "too dear"})
    thread.join(timeout=120)
    state = box["state"]
    assert state.is_completed(), state
    report: CampaignReport = state.result()
    assert report.iterations == () and report.failures == ()
    expected = "reject (human): too dear" if answer == "reject" else "reject (timeout default)"
    assert report.stop_reason == f"approval: {expected}"
    assert expected in _approval_artifact(run_id)
