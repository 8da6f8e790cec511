"""Campaigns as the Prefect UI sees them, for the CLI: list the campaign flow runs, answer a paused
one's approval, cancel one.  Reads and writes the same Prefect API the UI does (PREFECT_API_URL,
or the workspace's own run history when no server is configured)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

__all__ = ["CampaignRun", "cancel_campaign", "list_campaigns", "resume_campaign"]


@dataclass(frozen=True)
class CampaignRun:
    id: str
    name: str
    state: str
    started: datetime | None
    workspace: str
    benchmark: str


def list_campaigns(limit: int = 50) -> list[CampaignRun]:
    """The newest campaign flow runs first, whatever started them (CLI, UI, deployment, schedule)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["campaign"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=limit,
        )
    return [
        CampaignRun(
            id=str(run.id),
            name=run.name,
            state=(run.state.name if run.state else None) or "unknown",
            started=run.start_time or run.expected_start_time,
            workspace=str(run.parameters.get("config", {}).get("workspace", "(default)")),
            benchmark=str(run.parameters.get("config", {}).get("benchmark", "(default)")),
        )
        for run in runs
    ]


def resume_campaign(run_id: str, decision: str, note: str = "", params: dict | None = None) -> None:
    """Answer a paused campaign's approval form, exactly as the UI's form does."""
    from prefect.flow_runs import resume_flow_run

    from internflow.agent.approval import ApprovalInput

    answer = ApprovalInput(decision=decision, note=note, params=params)  # type: ignore[arg-type]
    resume_flow_run(UUID(run_id), run_input=answer.model_dump(mode="json", exclude={"metadata"}))


def cancel_campaign(run_id: str) -> str:
    """Ask for cancellation (Prefect's own `flow-run cancel` does the same); returns the new state."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    with get_client(sync_client=True) as client:
        result = client.set_flow_run_state(UUID(run_id), Cancelling(message="cancelled from the internflow CLI"))  # type: ignore[var-annotated]
    return str(result.state.name if result.state else result.status.value)
