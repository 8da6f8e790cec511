"""Checks a campaign's configuration before anything is spent, shared by the CLI and the
campaign flow (so a run triggered from the Prefect UI is refused the same way).  Every failure
is a ValueError whose message names the offending field or file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from internflow.benchmarks import get_benchmark
from internflow.catalog import validate_catalog
from internflow.models import check_hub_model, model_fingerprint, resolve_model
from internflow.schemas import CampaignConfig

__all__ = ["Preflight", "preflight"]


class Preflight(BaseModel):
    model_config = ConfigDict(frozen=True)

    base_model: str
    base_fingerprint: str
    datasets: tuple[str, ...]
    datasets_by_method: dict[str, tuple[str, ...]]


def usable_datasets_by_method(datasets: tuple[str, ...], benchmark: str) -> dict[str, tuple[str, ...]]:
    """Per training method, the datasets whose format can train it and that the quality checks and
    the decontamination gate leave rows in: the planner's data options."""
    from agent.guard import allowed_methods
    from tasks.dataset import screen_datasets

    by_method = {}
    for method in allowed_methods():
        checks = screen_datasets(datasets, benchmark, method)
        by_method[method] = tuple(name for name, check in checks.items() if not check.blocked and check.rows_kept)
    return by_method


def preflight(config: CampaignConfig) -> Preflight:
    from agent.planner import get_planner, load_recipe

    benchmark = get_benchmark(config.benchmark)
    try:
        benchmark.load("test")  # a catalog target's Hub data must be reachable before anything runs
    except RuntimeError as error:
        raise ValueError(f"benchmark: {error}") from None
    datasets = tuple(entry.name for entry in validate_catalog(benchmark.name))
    missing = [name for name in benchmark.default_datasets if name not in datasets]
    if missing:
        raise ValueError(f"datasets: the catalog lacks {missing}, the default training data of {benchmark.name!r}")
    get_planner(config)
    load_recipe(config.model, config.recipe, benchmark.default_datasets)
    base_model = resolve_model(config.model)  # last: the only check that may download
    check_hub_model(base_model)  # a Hub id this machine cannot get is refused now, not after minutes
    return Preflight(
        base_model=base_model,
        base_fingerprint=model_fingerprint(base_model),
        datasets=datasets,
        datasets_by_method=usable_datasets_by_method(datasets, benchmark.name),
    )
