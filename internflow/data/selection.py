"""Selecting a campaign's training data: discover candidates for the target, vet each one per
training method, and offer the planner only what passed, best first.

Preflight runs it without literature hints (to refuse a target with no usable data before
anything is spent); the campaign's `discover-data` stage runs it again with the literature
stage's dataset hints.  Both read the workspace's caches (discovery report, Hub rows).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from internflow.benchmarks import Benchmark
from internflow.data.candidates import DiscoveryOptions, discover
from internflow.data.vetting import DataPaths, TokenBudget, screen_sources
from internflow.schemas import CampaignConfig, DataPlan, DatasetCheck, DataSource, Hint

if TYPE_CHECKING:
    from internflow.workspace import Workspace

__all__ = ["NoTrainingDataError", "data_paths", "select_training_data"]

METHODS = ("sft", "dpo", "grpo")


class NoTrainingDataError(ValueError):
    """No candidate dataset survived vetting for any method: the message says what was searched."""


def data_paths(config: CampaignConfig, workspace: Workspace) -> DataPaths:
    """Where the campaign keeps loaded training rows, and its row budget per Hub dataset."""
    return DataPaths(workspace.data_dir / "hub", workspace.hf_cache_dir, config.data_row_budget)


def select_training_data(
    benchmark: Benchmark,
    config: CampaignConfig,
    paths: DataPaths,
    cache_dir: Path,
    recipe_method: str,
    hints: Iterable[Hint] = (),
    tokens: TokenBudget | None = None,
) -> DataPlan:
    """Discover, vet and rank training data for `benchmark`.  `tokens` (the base model, the recipe's
    max_length): rows too long to train are not counted as usable.  `NoTrainingDataError` when
    nothing usable is left, naming the target, what was searched and what happened to each candidate."""
    options = DiscoveryOptions(
        named=tuple(config.datasets) + benchmark.named_datasets,
        mappings=config.column_mappings,
        hub_datasets=config.hub_datasets,
    )
    report = discover(benchmark, cache_dir, hints, options)
    candidates = list(report.usable())
    checks = screen_sources(candidates, benchmark, paths, METHODS, tokens=tokens)
    by_method = {
        method: tuple(s.id for s in candidates if not checks[s.id][method].blocked and checks[s.id][method].rows_kept)
        for method in METHODS
    }
    usable_ids = {name for names in by_method.values() for name in names}
    sources = tuple(s for s in candidates if s.id in usable_ids)
    if not sources:
        raise NoTrainingDataError(_nothing_usable(benchmark, report.queries, report.notes, candidates, checks))
    default = benchmark.default_datasets or by_method.get(recipe_method, ())[:1]
    if not default:
        offered = ", ".join(f"{m}: {len(ids)}" for m, ids in by_method.items())
        raise NoTrainingDataError(
            f"datasets: no vetted dataset for {benchmark.name!r} can train the recipe's method {recipe_method!r} "
            f"(usable datasets per method: {offered}); choose another --recipe"
        )
    return DataPlan(discovery=report, sources=sources, by_method=by_method, default_datasets=default, checks=checks)


def _nothing_usable(
    benchmark: Benchmark,
    queries: tuple[str, ...],
    notes: tuple[str, ...],
    candidates: list[DataSource],
    checks: dict[str, dict[str, DatasetCheck]],
) -> str:
    vetted = "; ".join(
        f"{s.id}: " + ", ".join(f"{m} {c.rows_kept}/{c.rows_in} kept{' (blocked: ' + c.note + ')' if c.note else ''}"
                                for m, c in checks[s.id].items())
        for s in candidates
    )  # fmt: skip
    return (
        f"datasets: no usable training data for {benchmark.name!r}: searched the local catalog, the task's own "
        f"train_data and the Hub (queries {list(queries)}; {'; '.join(notes) or 'no notes'}); "
        f"vetted: {vetted or 'nothing found'}. Give training data with train_data: in the task spec, "
        "--datasets hub:owner/name, or a catalog folder (INTERNFLOW_CATALOG)"
    )
