"""Planning stage: read the campaign's history from Prefect, ask the planner for the next round
(one proposal, or up to `parallel_iterations` distinct ones run at the same time) with the doom-loop
guard reviewing each (re-ask once, then force a change of direction) — the decision is
`agent.round_planner.propose_round` — and record it all.

Artifacts: `proposal` (this iteration's decision; a newer version says "not run" when the budget
or an approval refused it), `guard-intervention` (each time the guard acts) and `planner-log` (the
campaign so far: outcome, guard action, proposal and why per iteration).
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from internflow.agent.digest import read_iteration_records, records_from_results
from internflow.agent.guard import GuardReview, IterationRecord, signature
from internflow.agent.planner import PlannerState
from internflow.agent.round_planner import propose_round
from internflow.markdown import cell, code, table
from internflow.narration import params_summary
from internflow.schemas import NoProposal, Proposal

__all__ = [
    "campaign_records",
    "close_planner_log",
    "plan_next_iteration",
    "plan_round",
    "planner_log_markdown",
    "publish_planner_log",
    "withdraw_proposal",
]


def campaign_records(state: PlannerState) -> tuple[list[IterationRecord], str]:
    """The campaign's iterations from Prefect's run history (joined with the typed results), and
    where they came from.  Only when the API cannot be read are the campaign's own results used,
    and that is logged and shown in the artifacts, never silent."""
    campaign_run_id = flow_run.id
    expected = len(state.history) + len(state.failures)
    if campaign_run_id:
        try:
            records = read_iteration_records(campaign_run_id, state.history)
            if len(records) >= expected:
                return records, f"Prefect run history of flow run {campaign_run_id}"
            problem = f"Prefect returned {len(records)} of {expected} iterations"
        except Exception as error:
            problem = f"Prefect API unreadable ({type(error).__name__}: {error})"
    else:
        problem = "not running inside a Prefect flow run"
    get_run_logger().warning("planner history: %s; using the campaign's own results instead", problem)
    return records_from_results(state.history, state.failures), f"campaign results ({problem})"


@task(name="plan", cache_policy=NO_CACHE)
def plan_next_iteration(state: PlannerState) -> Proposal | NoProposal:
    """The next iteration's proposal, reviewed by the guard; or, when there is none, why not."""
    answer = _plan(state, 1)
    return answer if isinstance(answer, NoProposal) else answer[0]


# The request is the PlannerState (typed: config, baseline, history, failures, literature, datasets)
# and the round's size; the plan task adds only what Prefect knows: the run history.
@task(name="plan-round", cache_policy=NO_CACHE)
def plan_round(state: PlannerState, size: int) -> tuple[Proposal, ...] | NoProposal:
    """Up to `size` distinct proposals to run at the same time, each reviewed by the guard; or,
    when there is not even one, why not.  A planner with `propose_batch(state, size)` is asked for
    the whole round at once (the LLM planners answer with a batch); any other is asked once per
    slot, with the round's earlier picks as `pending`."""
    return _plan(state, size)


def _plan(state: PlannerState, size: int) -> tuple[Proposal, ...] | NoProposal:
    """History from Prefect → `agent.round_planner.propose_round` → artifacts → the proposals."""
    records, source = campaign_records(state)
    plan = propose_round(state, records, size)
    for intervention in plan.interventions:
        _intervention(intervention.index, intervention.action, intervention.proposal, intervention.review)
    for slot, proposal in enumerate(plan.proposals):
        _publish_proposal(plan.first_index + slot, proposal, source, plan.digest_tokens)
    if plan.stop is not None:
        get_run_logger().info("no proposal for iteration %d: %s", plan.first_index, plan.stop.reason)
        _publish_proposal(plan.first_index, plan.stop, source, plan.digest_tokens)
    publish_planner_log(records, list(plan.proposals), state.baseline.accuracy)
    return plan.proposals or plan.stop or NoProposal(reason="nothing proposed")


def _intervention(index: int, action: str, proposal: Proposal, review: GuardReview) -> None:
    detections = "\n".join(f"- **{d.kind}**: {cell(d.message)}" for d in review.detections)
    create_markdown_artifact(
        key="guard-intervention",
        markdown=f"## Guard: {action} (iteration {index})\n\n"
        f"Proposal {code(signature(proposal.params))}\n\n{detections}",
        description=f"Doom-loop guard {action}",
    )


def _proposal_body(proposal: Proposal) -> str:
    evidence = "\n".join(f"- {cell(item)}" for item in proposal.evidence) or "- (none given)"
    guard = f"{proposal.guard_action}" + (f": {cell(proposal.guard_reasons)}" if proposal.guard_reasons else "")
    return (
        f"**Why:** {cell(proposal.rationale)}\n\n**Evidence:**\n{evidence}\n\n**Guard:** {guard}\n\n"
        f"```json\n{proposal.params.model_dump_json(indent=2)}\n```"
    )


def _publish_proposal(index: int, proposal: Proposal | NoProposal, source: str, digest_tokens: int) -> None:
    if isinstance(proposal, NoProposal):
        markdown = f"## No proposal\n\nThe planner (and the guard) proposed nothing: {cell(proposal.reason)}."
    else:
        markdown = (
            f"## Proposal for iteration {index} (by {cell(proposal.source or 'planner')})\n\n"
            f"{_proposal_body(proposal)}\n\nHistory read from: {cell(source)}; digest {digest_tokens} tokens."
        )
    create_markdown_artifact(key="proposal", markdown=markdown, description=f"Planner proposal for iteration {index}")


def withdraw_proposal(index: int, proposal: Proposal, reason: str, ended: bool = True) -> None:
    """A proposal the campaign did not run (the budget or an approval refused it): the `proposal`
    artifact's newest version says so, and the campaign log has one line for it.  `ended`: the
    campaign stops here (else only this proposal was cut from its round, the rest ran)."""
    get_run_logger().info("proposal for iteration %d not run: %s", index, reason)
    then = "the campaign ended here" if ended else "it was cut from its round to fit the budget; the rest ran"
    create_markdown_artifact(
        key="proposal",
        markdown=(
            f"## Not run: proposal for iteration {index}\n\n**Not run** — {cell(reason)}. Nothing was trained "
            f"for it; {then}.\n\n{_proposal_body(proposal)}"
        ),
        description=f"Not run (iteration {index}): {reason}",
    )


def _outcome(record: IterationRecord, baseline: float) -> str:
    if record.failed:  # the error names its class; a diagnosed failure (nan_loss, ...) has only its kind
        return f"failed: {record.error[:150] or record.failure_class or record.state}"
    gain = record.gain_over(baseline)
    score = "–" if record.accuracy is None else f"{record.accuracy:.1%}"
    return f"{score} ({record.verdict}, {100 * gain:+.1f} pt)" if gain is not None else f"{score} ({record.verdict})"


def planner_log_markdown(
    records: list[IterationRecord], pending: Proposal | Sequence[Proposal] | None, baseline: float
) -> str:
    """One row per iteration.  The short columns come first: the Prefect UI does not wrap table cells,
    so a long reason only runs off to the right instead of pushing the outcome out of sight."""
    rows = [
        [str(r.index), cell(_outcome(r, baseline)), cell(r.guard_action), cell(params_summary(r.params)),
         cell(r.rationale, 300)]
        for r in records
    ]  # fmt: skip
    running = [pending] if isinstance(pending, Proposal) else list(pending or ())
    for slot, proposal in enumerate(running, start=len(records) + 1):
        rows.append(
            [str(slot), "(running)", cell(proposal.guard_action), cell(params_summary(proposal.params)),
             cell(proposal.rationale, 300)]
        )  # fmt: skip
    return (
        f"## Planner log\n\nBaseline {baseline:.1%}. One row per iteration: the outcome (accuracy, verdict, gain "
        "over the baseline in points), what the doom-loop guard did with the proposal (accept; reject: re-asked; "
        "force: changed direction), its main parameters (all of them in its `proposal` artifact) and the "
        "planner's reason.\n\n" + table(["#", "outcome", "guard", "proposal", "why"], rows)
    )


def publish_planner_log(
    records: list[IterationRecord], pending: Proposal | Sequence[Proposal] | None, baseline: float
) -> None:
    create_markdown_artifact(
        key="planner-log",
        markdown=planner_log_markdown(records, pending, baseline),
        description="Per iteration: the outcome, what the guard did, what the planner proposed and why",
    )


@task(name="planner-log", cache_policy=NO_CACHE)
def close_planner_log(state: PlannerState) -> None:
    """The campaign's last word on its planner: every iteration with its outcome."""
    records, _ = campaign_records(state)
    publish_planner_log(records, None, state.baseline.accuracy)
