"""The planner agent's own tools: the campaign digest, one iteration's details and artifacts,
papers, and the dataset catalog.  They reuse the stages' code and read the planner's state."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smolagents import Tool

    from internflow.agent.planner import PlannerState

__all__ = ["campaign_tools"]


async def _artifacts(flow_run_id: str) -> list[dict[str, object]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return [{"key": a.key, "type": a.type, "data": str(a.data)[:1500]} for a in found]


def campaign_tools(state: PlannerState) -> list[Tool]:
    from smolagents import tool

    from internflow.catalog import get_entry, list_catalog, read_rows

    records = {r.index: r for r in state.records}

    @tool
    def campaign_digest() -> str:
        """The campaign so far: baseline, every iteration's parameters, outcome and guard action (size-bounded)."""
        return state.digest or "(no iterations yet)"

    @tool
    def iteration_details(index: int) -> str:
        """One past iteration in full: parameters, state, accuracy, failure, rationale, and its Prefect artifacts.

        Args:
            index: the iteration number (1, 2, ...).
        """
        if index not in records:
            return f"no iteration {index}; known: {sorted(records)}"
        record = records[index]
        details: dict[str, object] = json.loads(record.model_dump_json())
        if record.flow_run_id:
            try:
                details["artifacts"] = asyncio.run(_artifacts(record.flow_run_id))
            except Exception as error:  # the details are still useful without the artifacts
                details["artifacts"] = f"unavailable: {error}"
        return json.dumps(details)[:6000]

    sources = {s.id: s for s in state.sources}

    @tool
    def list_datasets() -> str:
        """The vetted datasets the planner may train on for this benchmark (local catalog, the task's own
        data, pinned Hub datasets), best first: rows, layout, methods they feed and why they ranked."""
        entries = list_catalog()
        lines = []
        for name in state.datasets:
            if name in sources:
                s = sources[name]
                lines.append(f"{name}: {s.rows} rows, {s.format}, feeds {'+'.join(s.methods)} — {s.why}"[:300])
            elif name in entries:
                e = entries[name]
                lines.append(f"{name}: {e.rows} rows, {e.format} — {e.description[:160]}")
        return "\n".join(lines)

    @tool
    def inspect_dataset(name: str) -> str:
        """One dataset in detail: a catalog dataset's card and first three rows, or a discovered
        dataset's record (source, pinned revision, column mapping, licence, why it ranked).

        Args:
            name: a dataset id from list_datasets.
        """
        if name in sources and sources[name].kind != "local":
            return sources[name].model_dump_json(exclude={"columns"})[:3000]
        entry = get_entry(name)
        rows, _ = read_rows(entry.data_file)
        return f"{entry.description}\n" + "\n".join(json.dumps(r)[:400] for r in rows[:3])

    @tool
    def search_papers(query: str) -> str:
        """Papers found by the literature stage for this campaign (titles and abstracts).

        Args:
            query: words to look for in titles and abstracts.
        """
        if state.literature is None:
            return "no literature survey available in this campaign yet"
        words = query.lower().split()
        papers = [p for p in state.literature.papers if any(w in (p.title + p.summary).lower() for w in words)]
        return "\n".join(f"{p.arxiv_id}: {p.title} — {p.summary[:300]}" for p in papers) or "no matching paper"

    return [campaign_digest, iteration_details, list_datasets, inspect_dataset, search_papers]
