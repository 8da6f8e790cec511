"""Data discovery stage: the campaign's candidate training datasets, found, pinned, vetted and
ranked (internflow.data.selection), with the dataset names the literature stage found added to
the Hub queries.  Publishes the `data-candidates` artifact: every candidate with its source,
revision, column mapping, rank score and why, and the gate's and quality checks' verdict per
training method — the evidence behind what the planner is offered.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from internflow.benchmarks import get_benchmark
from internflow.data.selection import data_paths, select_training_data
from internflow.markdown import cell, code
from internflow.schemas import CampaignConfig, DataPlan, Hint
from internflow.workspace import Workspace

__all__ = ["data_candidates_markdown", "discover_data"]


def data_candidates_markdown(plan: DataPlan) -> str:
    report = plan.discovery
    offered = {name for names in plan.by_method.values() for name in names}
    rows = []
    for source in report.sources:
        verdicts = plan.checks.get(source.id, {})
        vetting = "; ".join(
            f"{m}: {'blocked' if c.blocked else f'{c.rows_kept}/{c.rows_in} kept'}"
            + (f" ({c.note})" if c.note else "")  # escaped once, with the whole cell
            for m, c in verdicts.items()
        )
        state = "offered" if source.id in offered else source.status
        columns = source.mapping.describe() if source.mapping else "-"
        rows.append(
            f"| {cell(source.id)} | {source.kind} | {state} | {source.score:.2f} | {cell(source.why or source.note)} "
            f"| {cell(columns)} | {source.rows or '-'} | {cell(source.license or '-')} "
            f"| {(source.revision or '-')[:12]} | {cell(vetting or source.note or '-')} |"
        )
    notes = "".join(f"- {cell(note)}\n" for note in report.notes) or "- none\n"
    return (
        f"## Training data for {report.target} ({report.status})\n\n"
        f"Hub queries: {', '.join(code(q) for q in report.queries)}\n\n"
        "| dataset | source | state | score | why | columns | rows | licence | revision | vetting per method |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Offered per method: {'; '.join(f'{m}: {list(ids)}' for m, ids in plan.by_method.items())}; "
        f"the recipe starts from {list(plan.default_datasets)}.\n\n### What each service answered\n\n{notes}"
    )


@task(name="discover-data", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def discover_data(
    config: CampaignConfig, hints: tuple[Hint, ...], preflight_plan: DataPlan, tokens: tuple[str, int] | None = None
) -> DataPlan:
    """The campaign's training data, with the literature's dataset names searched too.  When the
    hints name no dataset, or searching them fails, preflight's vetted plan stands (logged).
    `tokens` (base model, max_length): rows too long to train are not counted, as at preflight."""
    logger = get_run_logger()
    plan = preflight_plan
    if any(h.kind == "dataset" for h in hints):
        benchmark = get_benchmark(config.benchmark)
        workspace = Workspace.open(config.workspace)
        try:
            plan = select_training_data(
                benchmark, config, data_paths(config, workspace), workspace.data_dir,
                config.recipe.partition("/")[0], hints, tokens,
            )  # fmt: skip
        except ValueError as error:  # a Hub that failed since preflight: keep what preflight vetted
            logger.warning("discovery with the literature's dataset names failed (%s); using preflight's", error)
    for note in plan.discovery.notes:
        logger.info("discovery: %s", note)
    logger.info(
        "training data for %s: %s (discovery %s)",
        plan.discovery.target,
        "; ".join(f"{m}: {list(ids)}" for m, ids in plan.by_method.items()),
        plan.discovery.status,
    )
    create_markdown_artifact(
        key="data-candidates",
        markdown=data_candidates_markdown(plan),
        description=f"{len(plan.sources)} vetted training datasets of {len(plan.discovery.sources)} candidates",
    )
    return plan
