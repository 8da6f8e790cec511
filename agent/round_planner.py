"""Planning a round: the planner asked for up to `size` distinct proposals (a batch when it can
answer with one, else once per slot with the round's earlier picks as `pending`), each reviewed by
the doom-loop guard: re-asked once, then a forced change of direction.

Pure decision-making: the plan task (tasks/plan.py) reads the history from Prefect, calls
`propose_round` and publishes what it returns (proposals, guard interventions, the planner log).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from internflow.agent.digest import build_digest
from internflow.agent.guard import DoomLoopGuard, GuardReview, IterationRecord, allowed_methods, signature
from internflow.agent.planner import Planner, PlannerState
from internflow.agent.registry import get_planner
from internflow.schemas import NoProposal, Proposal

__all__ = ["GuardIntervention", "RoundPlan", "propose_round", "stop_reason"]


@dataclass(frozen=True)
class GuardIntervention:
    """The guard acted on iteration `index`'s proposal: `reject` (re-asked), `force` or `stop`."""

    index: int
    action: str
    proposal: Proposal
    review: GuardReview


@dataclass
class RoundPlan:
    """A planned round: `proposals` for iterations `first_index`, `first_index` + 1, ...; or none and
    the `stop` that says why.  `digest_tokens`: the size of the history digest the planner read."""

    first_index: int
    proposals: tuple[Proposal, ...]
    stop: NoProposal | None
    digest_tokens: int
    interventions: list[GuardIntervention] = field(default_factory=list)


def propose_round(state: PlannerState, records: list[IterationRecord], size: int) -> RoundPlan:
    """Up to `size` distinct guard-reviewed proposals for the campaign `state`, whose iterations so far
    are `records` (Prefect's run history joined with the typed results).  The planner is built from
    `state.config.planner` (agent/registry.py)."""
    digest = build_digest(records, state.baseline.accuracy, token_budget=state.config.digest_tokens)
    literature = state.literature or (state.history[-1].literature if state.history else None)
    state = state.model_copy(update={"records": tuple(records), "digest": digest.text, "literature": literature})
    planner, guard = get_planner(state.config), DoomLoopGuard()
    plan = RoundPlan(first_index=len(records) + 1, proposals=(), stop=None, digest_tokens=digest.tokens)
    batch_of = getattr(planner, "propose_batch", None)
    batch: list[Proposal] | None = batch_of(state, size) if size > 1 and batch_of is not None else None
    chosen: list[Proposal] = []
    stop: NoProposal | None = None
    for slot in range(size):
        if batch is not None and slot >= len(batch):
            break  # the planner's batch had no more
        pending = state.model_copy(update={"pending": tuple(p.params for p in chosen)})
        offered = batch[slot] if batch else None
        answer = _reviewed(planner, guard, pending, records, plan.first_index + slot, plan.interventions, offered)
        if isinstance(answer, NoProposal):
            stop = stop or answer
            if batch is None:
                break
            continue
        if signature(answer.params) in {signature(p.params) for p in chosen}:
            continue  # e.g. the guard forced the same change of direction twice
        chosen.append(answer)
    plan.proposals = tuple(chosen)
    if not chosen:
        plan.stop = stop or NoProposal(reason=stop_reason(planner, state), source=state.config.planner)
    return plan


def _reviewed(
    planner: Planner,
    guard: DoomLoopGuard,
    state: PlannerState,
    records: list[IterationRecord],
    index: int,
    interventions: list[GuardIntervention],
    offered: Proposal | None = None,
) -> Proposal | NoProposal:
    """One proposal (`offered`, or the planner's answer) reviewed by the guard: re-asked once,
    then a forced change of direction; a NoProposal when the planner has nothing or the guard
    finds no untried direction.  Each time the guard acts is appended to `interventions`."""
    baseline = state.baseline.accuracy
    proposal = offered or planner.propose(state)
    if proposal is None:
        return NoProposal(reason=stop_reason(planner, state), source=state.config.planner)
    review = guard.review(proposal.params, records, baseline)
    if review.ok:
        return proposal
    interventions.append(GuardIntervention(index, "reject", proposal, review))
    retry_state = state.model_copy(update={"feedback": review.reasons(), "rejected": (signature(proposal.params),)})
    retry = planner.propose(retry_state)
    if retry is not None and guard.review(retry.params, records, baseline).ok:
        return retry.model_copy(update={"guard_action": "reject", "guard_reasons": review.reasons()})
    insisted = retry or proposal
    insisted_review = guard.review(insisted.params, records, baseline) if retry else review
    forced = guard.force_change(
        insisted.params, records, insisted_review, {m: state.datasets_for(m) for m in allowed_methods()}
    )
    if forced is None:
        interventions.append(GuardIntervention(index, "stop", insisted, insisted_review))
        return NoProposal(
            reason=f"guard: the planner insisted on {signature(insisted.params)} "
            f"({insisted_review.reasons()}) and no untried change of direction is left",
            source="guard",
        )
    forced_proposal = Proposal(
        params=forced,
        rationale=f"guard forced a change of direction after: {insisted_review.reasons()}",
        evidence=(f"planner insisted on {signature(insisted.params)}",),
        source=f"guard (over {insisted.source or 'planner'})",
        guard_action="force",
        guard_reasons=insisted_review.reasons(),
    )
    interventions.append(GuardIntervention(index, "force", forced_proposal, insisted_review))
    return forced_proposal


def stop_reason(planner: object, state: PlannerState) -> str:
    """The planner's own account of why it has nothing left (`stop_reason`), when it gives one."""
    explain = getattr(planner, "stop_reason", None)
    return str(explain(state)) if explain is not None else "nothing left worth trying"
