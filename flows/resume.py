"""A campaign killed mid-way (kill -9, a reboot) is resumed by the next campaign on its workspace.

Three pieces, kept out of the flow so that its body stays a list of stage calls:

- `one_campaign_per_workspace`: the campaign flow holds the workspace's lock (internflow.workspace_lock)
  for its whole run, a second campaign is refused naming the first; and the flow runs a dead holder
  left "Running" (or "Paused") in Prefect's history — the campaign and its iteration sub-flows and
  task runs — are marked Crashed, saying which run took over.
- `unfinished_record`: the workspace's `report.json`, when it was written by a campaign of the same
  configuration that never finished (its stop reason is still "running").
- `resume`: that record put back into the new campaign's ledger — its finished and failed
  iterations (with their flow run ids), the time it had spent — so the budget goes on from there
  and the planner plans the next iteration from the record.  Work the killed iteration had done
  comes back through the caches: a finished training run is found again, an unfinished one
  resumes from its last checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from internflow.schemas import CampaignConfig, CampaignReport
from internflow.workspace_lock import Holder, hold_workspace

if TYPE_CHECKING:
    from internflow.flows.ledger import CampaignLedger

__all__ = ["RUNNING", "mark_crashed", "one_campaign_per_workspace", "resume", "unfinished_record"]

RUNNING = "running"  # the stop reason report.json carries while its campaign is under way


@contextmanager
def one_campaign_per_workspace(workspace: Path) -> Iterator[list[str]]:
    """Hold `workspace` for this campaign flow run; yields the ids of the flow runs that a dead
    campaign had left unfinished and that were marked Crashed."""
    from prefect.runtime import flow_run

    run_id, run_name = str(flow_run.id), str(flow_run.name)
    with hold_workspace(workspace, "campaign", flow_run_id=run_id, flow_run_name=run_name) as stale:
        yield mark_crashed(stale, run_id)


def mark_crashed(stale: Holder | None, taken_over_by: str) -> list[str]:
    """Mark Crashed the unfinished flow runs (and their unfinished task runs) of a holder that died
    holding the workspace: its campaign run and that run's iteration sub-flows."""
    if stale is None or not stale.flow_run_id or stale.flow_run_id == taken_over_by:
        return []
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    message = (
        f"its process ({stale.describe()}) died without finishing; flow run {taken_over_by} took over the workspace"
    )
    unfinished = [StateType.RUNNING, StateType.PENDING, StateType.PAUSED, StateType.SCHEDULED, StateType.CANCELLING]
    marked = []
    with get_client(sync_client=True) as client:
        try:
            campaign = client.read_flow_run(UUID(stale.flow_run_id))
        except (ObjectNotFound, ValueError):  # another Prefect history (a server), or a malformed id
            return []
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[campaign.id]))
        )
        for run in [campaign, *children]:
            if run.state is None or run.state.type not in unfinished:
                continue
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            marked.append(str(run.id))
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=unfinished))),
            )
            for task_run in tasks:
                client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
    return marked


def unfinished_record(report_json: Path, config: CampaignConfig) -> CampaignReport | None:
    """The record a campaign of this same configuration left when it was killed, or None (no
    record, a finished one, another configuration, or one this version cannot read)."""
    try:
        record = CampaignReport.model_validate_json(report_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.stop_reason != RUNNING or record.config != config:
        return None
    return record


def resume(ledger: CampaignLedger, record: CampaignReport | None) -> None:
    """Put a killed campaign's record into `ledger`: its iterations and failures as they were, and
    its elapsed time counted against the budget."""
    if record is None:
        return
    ledger.history[:0] = list(record.iterations)
    ledger.failures[:0] = list(record.failures)
    ledger.started = min(ledger.started, time.monotonic() - record.elapsed_s)
    ledger.resumed_from = (*record.resumed_from, *([record.flow_run_id] if record.flow_run_id else []))
