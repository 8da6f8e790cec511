"""A planning round's iterations, run at the same time, each as its own `research-iteration` flow run.

With a work pool (`CampaignConfig.work_pool`) each one is a run of the pool's iteration deployment
(`run_deployment`, linked to the campaign run as its sub-flow), picked up by whichever worker is
free: a worker per GPU.  Without one they are sub-flow runs of the campaign's own process, one
thread each (Prefect 3 has no `Flow.submit`; each thread carries a copy of the campaign's run
context, so the runs nest under it as a sequential sub-flow would).  Either way every train
stage holds a slot of the `gpu` concurrency limit, so the limit, not the round, caps how many
models train at once.

Each outcome comes back as the run's final state (or, from a worker, the result it wrote to the
workspace), with the time it finished: the campaign records a failed or crashed run as failed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import tags
from prefect.states import Failed, State

from internflow.agent.digest import GUARD_TAG_PREFIX
from internflow.flows.iteration import research_iteration
from internflow.schemas import IterationContext, IterationResult, Proposal
from internflow.workspace import Workspace

__all__ = ["Outcome", "run_round"]


@dataclass(frozen=True)
class Outcome:
    proposal: Proposal
    index: int
    state: State | IterationResult  # the run's final state, or its result read back from the workspace
    finished_s: float  # on the campaign's clock


def run_round(
    round_: list[tuple[Proposal, IterationContext]],
    storage: Path,
    clock: Callable[[], float],
    deployment_id: str | None = None,
) -> list[Outcome]:
    """Run every (proposal, context) of the round at the same time; their outcomes in index order.
    A round of one without a pool runs in this thread, as a campaign always did."""

    def one(proposal: Proposal, context: IterationContext) -> Outcome:
        guard_tag = GUARD_TAG_PREFIX + proposal.guard_action  # the guard's action, kept in Prefect's history
        if deployment_id is not None:
            return Outcome(proposal, context.index, _on_pool(deployment_id, proposal, context, guard_tag), clock())
        with tags(guard_tag):
            state = research_iteration.with_options(result_storage=storage)(
                proposal.params, context, proposal.rationale, return_state=True
            )
        return Outcome(proposal, context.index, state, clock())

    if len(round_) == 1 and deployment_id is None:
        return [one(*round_[0])]
    with ThreadPoolExecutor(max_workers=len(round_), thread_name_prefix="iteration") as pool:
        futures = []
        for proposal, context in round_:
            copied = contextvars.copy_context()  # the campaign's run context and tags, carried into the thread
            futures.append(pool.submit(copied.run, one, proposal, context))
        outcomes = [future.result() for future in futures]
    return sorted(outcomes, key=lambda o: o.index)


def _on_pool(deployment_id: str, proposal: Proposal, context: IterationContext, tag: str) -> State | IterationResult:
    """A run of the pool's iteration deployment, waited for; its result, read from the workspace
    the worker shares with the campaign, or its final state when it did not complete."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    parameters: dict[str, Any] = {
        "params": proposal.params.model_dump(mode="json"),
        "context": context.model_dump(mode="json"),
        "rationale": proposal.rationale,
    }
    run: FlowRun = run_deployment(  # type: ignore[assignment]  # the sync dispatch in a sync caller
        deployment_id, parameters=parameters, timeout=None, poll_interval=5, tags=[tag]
    )
    state = run.state
    if state is None or not state.is_completed():
        return state or Failed(message=f"flow run {run.id} has no state")
    path = Workspace.open(context.workspace).iterations_dir / f"{run.id}.json"
    if not path.is_file():
        failed: State = Failed(
            message=f"flow run {run.id} completed but wrote no result to {path}: does the worker share the "
            "campaign's workspace (same path, shared storage)?"
        )
        failed.state_details.flow_run_id = run.id
        return failed
    return IterationResult.model_validate_json(path.read_text())
