"""Human approval of expensive iterations: above a GPU-hour or dollar threshold the campaign's flow
run pauses and the Prefect UI shows a typed form (approve / reject / edit the parameters).

No answer within the timeout applies the configured default.  Every decision — asked or not
needed — is recorded as an `approval` artifact, so the run's history says who let what through.
"""

from __future__ import annotations

from typing import Literal

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from internflow.agent.budget import JobEstimate, estimate_job
from internflow.schemas import CampaignConfig, IterationParams, Proposal

__all__ = [
    "ApprovalDecision",
    "ApprovalInput",
    "RoundApprovalInput",
    "approval_reason",
    "request_approval",
    "request_round_approval",
]


class ApprovalInput(RunInput):
    """The form the Prefect UI renders on the paused campaign run."""

    decision: Literal["approve", "reject"] = Field("approve", description="Run this iteration, or stop the campaign.")
    params: IterationParams | None = Field(None, description="Edited parameters to run instead (empty: as proposed).")
    note: str = Field("", description="Why (kept in the approval artifact).")


class ApprovalDecision(BaseModel):
    decision: Literal["approve", "reject"]
    by: Literal["not needed", "human", "timeout default"]
    reason: str = Field("", description="Why approval was asked for.")
    note: str = ""
    params: IterationParams

    def describe(self) -> str:
        return f"{self.decision} ({self.by}){': ' + self.note if self.note else ''}"


def approval_reason(config: CampaignConfig, estimate: JobEstimate | None) -> str | None:
    """Why this job needs a human, or None.  Before any iteration was measured the cost is unknown,
    and an unknown cost is not below the threshold: ask."""
    if config.approval_gpu_hours is None and config.approval_usd is None:
        return None
    if estimate is None:
        return "no iteration measured yet, so its cost is unknown"
    if config.approval_gpu_hours is not None and estimate.hours > config.approval_gpu_hours:
        return f"{estimate.describe()}: above {config.approval_gpu_hours:g} GPU-hours"
    if config.approval_usd is not None and estimate.usd > config.approval_usd:
        return f"{estimate.describe()}: above ${config.approval_usd:.2f}"
    return None


@task(name="approval", cache_policy=NO_CACHE)
def request_approval(proposal: Proposal, estimate_s: float | None, config: CampaignConfig) -> ApprovalDecision:
    """Pause the flow run for a decision when the job is above threshold; otherwise approve."""
    estimate = None if estimate_s is None else estimate_job(estimate_s, "gpu", config.gpu_usd_per_hour)
    reason = approval_reason(config, estimate)
    if reason is None:
        return ApprovalDecision(decision="approve", by="not needed", params=proposal.params)
    logger = get_run_logger()
    form = ApprovalInput.with_initial_data(
        description=f"**Approve this iteration?** {reason}.\n\n{proposal.rationale}\n\n"
        f"No answer in {config.approval_timeout_s} s → {config.approval_default}.",
        decision="approve",
        params=proposal.params,
    )
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=config.approval_timeout_s)
        decision = ApprovalDecision(
            decision=answer.decision,
            by="human",
            reason=reason,
            note=answer.note,
            params=answer.params or proposal.params,
        )
    except FlowPauseTimeout:
        _resume_after_timeout()
        decision = ApprovalDecision(
            decision=config.approval_default, by="timeout default", reason=reason, params=proposal.params
        )
    logger.info(f"approval: {decision.describe()}")
    create_markdown_artifact(
        key="approval",
        markdown=f"## Approval: {decision.describe()}\n\nAsked because: {reason}.\n\n"
        f"```json\n{decision.params.model_dump_json(indent=2)}\n```",
        description=f"approval: {decision.describe()}",
    )
    return decision


class RoundApprovalInput(RunInput):
    """The form for a round of several iterations: all of them run, or none (edit one by lowering
    parallel_iterations)."""

    decision: Literal["approve", "reject"] = Field("approve", description="Run this round, or stop the campaign.")
    note: str = Field("", description="Why (kept in the approval artifact).")


@task(name="approval", cache_policy=NO_CACHE)
def request_round_approval(
    proposals: tuple[Proposal, ...], estimate_s: float | None, config: CampaignConfig
) -> ApprovalDecision:
    """One decision for a round run at the same time, on the sum of its iterations' estimates
    (a round of one is `request_approval`, whose form can also edit the parameters).  The
    decision's `params` are the first proposal's."""
    if len(proposals) == 1:
        return request_approval.fn(proposals[0], estimate_s, config)
    estimate = None if estimate_s is None else estimate_job(estimate_s, "gpu", config.gpu_usd_per_hour)
    reason = approval_reason(config, estimate)
    first = proposals[0].params
    if reason is None:
        return ApprovalDecision(decision="approve", by="not needed", params=first)
    reason = f"a round of {len(proposals)} iterations, counted as their sum: {reason}"
    listed = "\n".join(f"- {p.rationale}" for p in proposals)
    form = RoundApprovalInput.with_initial_data(
        description=f"**Approve this round?** {reason}.\n\n{listed}\n\n"
        f"No answer in {config.approval_timeout_s} s → {config.approval_default}.",
        decision="approve",
    )
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=config.approval_timeout_s)
        decision = ApprovalDecision(decision=answer.decision, by="human", reason=reason, note=answer.note, params=first)
    except FlowPauseTimeout:
        _resume_after_timeout()
        decision = ApprovalDecision(decision=config.approval_default, by="timeout default", reason=reason, params=first)
    get_run_logger().info(f"approval of a round of {len(proposals)}: {decision.describe()}")
    create_markdown_artifact(
        key="approval",
        markdown=f"## Approval: {decision.describe()}\n\nAsked because: {reason}.\n\n{listed}",
        description=f"approval (round of {len(proposals)}): {decision.describe()}",
    )
    return decision


def _resume_after_timeout() -> None:
    """The server keeps an unanswered run Paused; the flow goes on (with the default), so say so."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
        if state is None or not state.is_paused():  # cancelled from the UI/CLI while waiting: don't revive it
            now = state.name if state else "no state"
            raise RuntimeError(f"approval: the run left its pause while waiting ({now}); not continuing")
        client.set_flow_run_state(flow_run.id, Running(), force=True)
