"""The campaign digest: the planner's memory, read from Prefect's run history, kept under a budget.

`read_iteration_records` asks the Prefect API for the campaign's `research-iteration` sub-flow
runs (their parameters, final states, failure messages, guard tags and artifacts) and joins the
typed results the campaign holds for completed ones.  `build_digest` turns those records into a
size-bounded text: however long the campaign runs, it keeps the best iterations, the most recent
ones and one example of every distinct failure class, and says how many it left out.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable

from pydantic import BaseModel, ConfigDict, Field

from internflow.agent.guard import IterationRecord, signature
from internflow.schemas import FailedIteration, IterationParams, IterationResult

__all__ = [
    "GUARD_TAG_PREFIX",
    "CampaignDigest",
    "approx_tokens",
    "build_digest",
    "read_iteration_records",
    "records_from_results",
]

GUARD_TAG_PREFIX = "guard:"  # the campaign tags each iteration run with the guard's action
ITERATION_FLOW = "research-iteration"


def approx_tokens(text: str) -> int:
    """A tokenizer-free upper-ish estimate (~4 characters per token for English and JSON)."""
    return (len(text) + 3) // 4


class CampaignDigest(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    shown: tuple[int, ...] = Field(description="Iteration indices written out in full.")
    total: int
    tokens: int


def _failure_class_of(result: IterationResult) -> str | None:
    if result.diagnosis.verdict != "failed":
        return None
    errors = [f.kind for f in result.diagnosis.findings if f.severity == "error"]
    return errors[0] if errors else "failed"


def _record_from_result(result: IterationResult, guard_action: str = "accept") -> IterationRecord:
    return IterationRecord(
        index=result.index,
        params=result.params,
        rationale=result.rationale,
        state="COMPLETED",
        accuracy=result.evaluation.accuracy,
        gain=result.diagnosis.gain_vs_baseline,
        eval_n=result.evaluation.n,
        verdict=result.diagnosis.verdict,
        failure_class=_failure_class_of(result),
        guard_action=guard_action,
        flow_run_id=result.flow_run_id,
        wall_s=result.wall_s,
    )


def _exception_class(message: str) -> str:
    """'Flow run encountered an exception: ValueError: ...' → 'ValueError'."""
    found = re.search(r"([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Crash\w*))\b", message)
    return found.group(1).rsplit(".", 1)[-1] if found else "error"


def records_from_results(
    history: Iterable[IterationResult], failures: Iterable[FailedIteration]
) -> list[IterationRecord]:
    """Records from the campaign's own typed results (what the digest falls back to without Prefect)."""
    records = [_record_from_result(r) for r in history]
    records += [
        IterationRecord(
            index=f.index,
            params=f.params,
            rationale=f.rationale,
            state="FAILED",
            verdict="failed",
            failure_class=_exception_class(f.error),
            error=f.error,
            flow_run_id=f.flow_run_id,
        )
        for f in failures
    ]
    return sorted(records, key=lambda r: r.index)


async def _read_runs(campaign_run_id: str, results: dict[str, IterationResult]) -> list[IterationRecord]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[campaign_run_id])),
            sort=FlowRunSort.START_TIME_ASC,
        )
        runs = [r for r in runs if r.state_type is not None and r.state_type.value not in ("PENDING", "RUNNING")]
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[r.id for r in runs]))
        )
    keys: dict[str, list[str]] = {}
    for artifact in artifacts:
        if artifact.key:
            keys.setdefault(str(artifact.flow_run_id), []).append(artifact.key)
    records = []
    for run in runs:
        if "params" not in run.parameters or "context" not in run.parameters:
            continue  # not an iteration sub-flow (e.g. another flow run nested in the campaign)
        guard = next((t[len(GUARD_TAG_PREFIX) :] for t in run.tags if t.startswith(GUARD_TAG_PREFIX)), "accept")
        run_id = str(run.id)
        state = run.state_type.value if run.state_type else "UNKNOWN"
        if state == "COMPLETED" and run_id in results:
            record = _record_from_result(results[run_id], guard)
        else:
            message = run.state.message or "" if run.state else ""
            record = IterationRecord(
                index=int(run.parameters["context"]["index"]),
                params=IterationParams.model_validate(run.parameters["params"]),
                rationale=str(run.parameters.get("rationale", "")),
                state=state,
                verdict="failed" if state != "COMPLETED" else None,
                failure_class=_exception_class(message) if state != "COMPLETED" else None,
                error=message,
                guard_action=guard,
                flow_run_id=run_id,
            )
        records.append(record.model_copy(update={"artifacts": tuple(sorted(set(keys.get(run_id, []))))}))
    return sorted(records, key=lambda r: r.index)


def read_iteration_records(campaign_run_id: str, history: Iterable[IterationResult] = ()) -> list[IterationRecord]:
    """The campaign's iterations as Prefect recorded them: sub-flow parameters, final states,
    failure messages, guard tags and artifact keys, joined with the typed results by flow-run id."""
    results = {r.flow_run_id: r for r in history if r.flow_run_id}
    return asyncio.run(_read_runs(campaign_run_id, results))


# ---------------------------------------------------------------- the digest ---------------


def _line(record: IterationRecord, baseline: float) -> str:
    if record.failed:
        outcome = f"FAILED {record.failure_class or record.state}"
        if record.error:
            outcome += f" ({record.error[:80]})"
    else:
        gain = record.gain_over(baseline) or 0.0
        items = f" on a {record.eval_n}-item screen" if record.params.eval_fraction < 1 and record.eval_n else ""
        outcome = f"acc {record.accuracy:.1%}{items} ({gain:+.1%} vs baseline), {record.verdict}"
    guard = f" [guard: {record.guard_action}]" if record.guard_action != "accept" else ""
    why = f" — why: {record.rationale[:100]}" if record.rationale else ""
    return f"#{record.index} {signature(record.params)} → {outcome}{guard}{why}"


def _priority(
    records: list[IterationRecord], baseline: float, keep_best: int, keep_recent: int
) -> list[IterationRecord]:
    """Records in the order they earn a place: best, most recent, one per failure class, the rest."""
    healthy = sorted((r for r in records if not r.failed), key=lambda r: -(r.gain_over(baseline) or 0.0))
    recent = list(reversed(records))
    first_of_class: dict[str, IterationRecord] = {}
    for record in recent:
        if record.failed:
            first_of_class.setdefault(record.failure_class or record.state, record)
    ordered = healthy[:keep_best] + recent[:keep_recent] + list(first_of_class.values()) + recent
    unique: dict[int, IterationRecord] = {}
    for record in ordered:
        unique.setdefault(record.index, record)
    return list(unique.values())


def build_digest(
    records: list[IterationRecord],
    baseline: float,
    *,
    token_budget: int = 1200,
    keep_best: int = 3,
    keep_recent: int = 3,
    count_tokens: Callable[[str], int] = approx_tokens,
) -> CampaignDigest:
    """A summary of every iteration so far that never exceeds `token_budget`."""
    failures = [r for r in records if r.failed]
    classes = sorted({r.failure_class or r.state for r in failures})
    header = (
        f"Baseline accuracy {baseline:.1%}. {len(records)} iterations so far, {len(failures)} failed"
        + (f" (classes: {', '.join(classes)})" if classes else "")
        + "."
    )
    chosen: list[IterationRecord] = []
    lines_tokens = count_tokens(header)
    for record in _priority(records, baseline, keep_best, keep_recent):
        cost = count_tokens(_line(record, baseline)) + 1
        footer_cost = count_tokens(f"({len(records)} iterations omitted)") + 1
        if lines_tokens + cost + footer_cost > token_budget:
            break
        chosen.append(record)
        lines_tokens += cost
    chosen.sort(key=lambda r: r.index)
    lines = [header, *(_line(r, baseline) for r in chosen)]
    if omitted := len(records) - len(chosen):
        lines.append(f"({omitted} iterations omitted)")
    text = "\n".join(lines)
    while count_tokens(text) > token_budget:  # a budget smaller than the header itself
        text = text[: max(0, len(text) - 40)]
    shown = tuple(r.index for r in chosen)
    return CampaignDigest(text=text, shown=shown, total=len(records), tokens=count_tokens(text))
