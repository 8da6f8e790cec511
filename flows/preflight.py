"""Checks a campaign's configuration before anything is spent, shared by the CLI and the
campaign flow (so a run triggered from the Prefect UI is refused the same way).  Every failure
is a ValueError whose message names the offending field or file.

It also selects the training data (internflow.data.selection): a target with nothing usable to
train on after discovery and vetting is refused here, naming what was searched."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from internflow.agent.registry import get_planner
from internflow.benchmarks import get_benchmark
from internflow.catalog import validate_catalog
from internflow.data.selection import data_paths, select_training_data
from internflow.models import check_hub_model, load_chat_tokenizer, model_fingerprint, resolve_model
from internflow.recipes import load_recipe
from internflow.schemas import CampaignConfig, DataPlan
from internflow.workspace import Workspace

__all__ = ["Preflight", "preflight"]


class Preflight(BaseModel):
    model_config = ConfigDict(frozen=True)

    base_model: str
    base_fingerprint: str
    data: DataPlan
    tokens: tuple[str, int] | None = None  # (base model, the recipe's max_length): what data was measured in

    @property
    def datasets(self) -> tuple[str, ...]:
        return self.data.datasets

    @property
    def datasets_by_method(self) -> dict[str, tuple[str, ...]]:
        return self.data.by_method


def preflight(config: CampaignConfig) -> Preflight:
    benchmark = get_benchmark(config.benchmark)
    try:
        benchmark.load("test")  # a catalog target's Hub data must be reachable before anything runs
    except RuntimeError as error:
        raise ValueError(f"benchmark: {error}") from None
    if config.select_on == "dev":
        try:
            benchmark.load("dev")
        except (ValueError, RuntimeError):
            raise ValueError(
                f"select_on: {benchmark.name!r} has no dev split to choose iterations on (no validation split, "
                "no dev_data, and too little train_data to hold some out); add dev_data: to the task spec, or "
                "pass --select-on test to choose on the test split (every report then marks it optimistic)"
            ) from None
    validate_catalog(benchmark.name)  # a corrupt catalog file is named before anything is spent
    get_planner(config)
    if config.work_pool:  # the pool must have an iteration deployment before the baseline is spent
        from internflow.work_pools import iteration_deployment

        iteration_deployment(config.work_pool)
    recipe_method = config.recipe.partition("/")[0]
    max_length = load_recipe(config.model, config.recipe, ("any",)).max_length  # the recipe's, whatever its data
    base_model = resolve_model(config.model)  # the only check that may download: before the data is vetted in it
    check_hub_model(base_model)  # a Hub id this machine cannot get is refused now, not after minutes
    load_chat_tokenizer(base_model)  # a base model without a chat template is refused, with the fix
    workspace = Workspace.open(config.workspace)
    data = select_training_data(
        benchmark, config, data_paths(config, workspace), workspace.data_dir, recipe_method,
        tokens=(base_model, max_length),  # rows too long for the recipe in this model's tokens are not usable
    )  # fmt: skip
    load_recipe(config.model, config.recipe, data.default_datasets)
    return Preflight(
        base_model=base_model,
        base_fingerprint=model_fingerprint(base_model),
        data=data,
        tokens=(base_model, max_length),
    )
