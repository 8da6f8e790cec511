"""Which `IterationParams` field becomes which TRL config argument: one table.

A new hyper-parameter is a schema field (internflow.schemas), a row here (or in `NOT_TRL_ARGUMENTS`,
saying where it acts instead) and a recipe value; tests/test_training_arguments.py fails when a
field is in neither.  Importing this module imports neither torch nor TRL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from internflow.schemas import IterationParams

__all__ = ["NOT_TRL_ARGUMENTS", "RECIPE_FIELDS", "TRL_ARGUMENTS", "TrlArgument", "trl_arguments"]


class TrlArgument(NamedTuple):
    """The config argument a field sets, for `methods` (empty: every method); `recipe_field`: an
    argument internflow adds to TRL's configs (`configs.RecipeFields`) rather than one of TRL's own."""

    name: str
    methods: tuple[str, ...] = ()
    recipe_field: bool = False


TRL_ARGUMENTS: dict[str, TrlArgument] = {
    # max_steps and warmup_steps: a screen trains train_fraction of them (`IterationParams.trained_steps`).
    "max_steps": TrlArgument("max_steps"),
    "warmup_steps": TrlArgument("warmup_steps"),
    "learning_rate": TrlArgument("learning_rate"),
    "lr_scheduler_type": TrlArgument("lr_scheduler_type"),
    "seed": TrlArgument("seed"),
    # On a GPU `device.device_arguments` folds the accumulation into the batch (same rows per step).
    "per_device_train_batch_size": TrlArgument("per_device_train_batch_size"),
    "gradient_accumulation_steps": TrlArgument("gradient_accumulation_steps"),
    "use_lora": TrlArgument("use_lora", recipe_field=True),
    "lora_r": TrlArgument("lora_r", recipe_field=True),
    "lora_alpha": TrlArgument("lora_alpha", recipe_field=True),
    "min_per_device_train_batch_size": TrlArgument("min_per_device_train_batch_size", recipe_field=True),
    "max_length": TrlArgument("max_length", ("sft", "dpo")),
    "completion_only_loss": TrlArgument("completion_only_loss", ("sft",)),
    "beta": TrlArgument("beta", ("dpo", "grpo")),
    "num_generations": TrlArgument("num_generations", ("grpo",)),
    "max_completion_length": TrlArgument("max_completion_length", ("grpo",)),
    "reward_funcs": TrlArgument("reward_funcs", ("grpo",), recipe_field=True),  # GRPORecipeConfig's own
}

# Fields that are no TRL argument, and where they act instead.
NOT_TRL_ARGUMENTS: dict[str, str] = {
    "method": "chooses the trainer (internflow.training.METHODS)",
    "init_from": "chooses the model the run starts from (flows/iteration.py)",
    "datasets": "the dataset stage mixes them into the training file",
    "dataset_weights": "the dataset stage's mixing shares",
    "max_train_samples": "the dataset stage's row count",
    "data_shard": "the dataset stage's slice of each shuffled dataset",
    "train_fraction": "scales max_steps and warmup_steps (IterationParams.trained_steps)",
    "eval_fraction": "the evaluate stage's share of the eval subset",
    "self_distill_k": "the self-distillation stage (tasks/distill.py)",
    "self_distill_temperature": "the self-distillation stage",
    "self_distill_prompts": "the self-distillation stage",
    "self_distill_keep_original": "the self-distillation stage",
}

# internflow's own fields on every method's TRL config (`configs.RecipeFields`).
RECIPE_FIELDS: tuple[str, ...] = tuple(
    field for field, argument in TRL_ARGUMENTS.items() if argument.recipe_field and not argument.methods
)


def trl_arguments(params: IterationParams) -> dict[str, Any]:
    """The TRL config arguments `params` sets for its method, by `TRL_ARGUMENTS` (tuples as lists).

    >>> from internflow.schemas import IterationParams
    >>> trl_arguments(IterationParams(method="dpo", max_steps=40, train_fraction=0.25))["max_steps"]
    10
    """
    arguments = {
        argument.name: list(value) if isinstance(value := getattr(params, field), tuple) else value
        for field, argument in TRL_ARGUMENTS.items()
        if not argument.methods or params.method in argument.methods
    }
    steps, warmup = params.trained_steps()  # a screen trains train_fraction of them
    return arguments | {TRL_ARGUMENTS["max_steps"].name: steps, TRL_ARGUMENTS["warmup_steps"].name: warmup}
