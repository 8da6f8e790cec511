"""One table from IterationParams fields to TRL config arguments (internflow.training.arguments)."""

from __future__ import annotations

import dataclasses

import pytest

from internflow.schemas import IterationParams
from internflow.training.arguments import NOT_TRL_ARGUMENTS, RECIPE_FIELDS, TRL_ARGUMENTS, trl_arguments


def test_every_iteration_parameter_is_a_trl_argument_or_says_where_it_acts() -> None:
    """A new hyper-parameter forgotten in the TRL mapping fails here."""
    fields = set(IterationParams.model_fields)
    assert not set(TRL_ARGUMENTS) & set(NOT_TRL_ARGUMENTS), "in both"
    assert fields - set(TRL_ARGUMENTS) - set(NOT_TRL_ARGUMENTS) == set(), "in neither"
    assert set(TRL_ARGUMENTS) | set(NOT_TRL_ARGUMENTS) <= fields, "no such IterationParams field"


@pytest.mark.parametrize("method", ["sft", "dpo", "grpo"])
def test_every_mapped_argument_is_a_field_of_the_methods_config(method: str) -> None:
    """A misspelt TRL argument fails here rather than in a training run."""
    import importlib

    config = {"sft": "SFTRecipeConfig", "dpo": "DPORecipeConfig", "grpo": "GRPORecipeConfig"}[method]
    module = importlib.import_module(f"internflow.training.{method}")
    names = {f.name for f in dataclasses.fields(getattr(module, config))}
    arguments = trl_arguments(IterationParams(method=method, datasets=("d",)))
    assert set(arguments) <= names, set(arguments) - names


def test_recipe_fields_are_the_mapped_fields_trl_lacks_with_the_schemas_defaults() -> None:
    from internflow.training.configs import RecipeFields

    fields = {f.name: f for f in dataclasses.fields(RecipeFields)}
    assert tuple(fields) == RECIPE_FIELDS
    for name, field in fields.items():
        assert field.default == IterationParams.model_fields[name].default, name
        assert field.type == IterationParams.model_fields[name].annotation.__name__, name  # type: ignore[union-attr]


def test_a_screen_trains_its_share_of_the_steps_and_each_method_gets_only_its_arguments() -> None:
    params = IterationParams(method="dpo", max_steps=40, warmup_steps=4, train_fraction=0.25)
    arguments = trl_arguments(params)
    assert (arguments["max_steps"], arguments["warmup_steps"]) == (10, 1)
    assert arguments["beta"] == params.beta and "num_generations" not in arguments
    grpo = trl_arguments(IterationParams(method="grpo"))
    assert grpo["reward_funcs"] == ["exact_answer", "format"] and "max_length" not in grpo
