"""Group relative policy optimisation: TRL's GRPOTrainer on prompt (+ answer) rows, scored by
reward functions from the registry in `rewards`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trl import GRPOConfig, GRPOTrainer

from internflow.training.configs import RecipeFields, TrainingMethod, lora_config
from internflow.training.data_check import METHOD_COLUMNS
from internflow.training.rewards import get_reward_funcs

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from internflow.schemas import TrainRequest

__all__ = ["METHOD", "GRPORecipeConfig"]


@dataclass
class GRPORecipeConfig(RecipeFields, GRPOConfig):
    """TRL's GRPOConfig plus internflow's recipe fields and the rewards to score with."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["exact_answer", "format"],
        metadata={"help": "Registered reward names or 'module:function' paths (internflow.training.rewards)."},
    )
    reward_benchmark: str = field(
        default="arithmetic", metadata={"help": "Benchmark whose answer extractor and judge the rewards use."}
    )


def make_config(request: TrainRequest, arguments: dict[str, Any]) -> GRPORecipeConfig:
    # beta, num_generations, max_completion_length, reward_funcs: `arguments.TRL_ARGUMENTS`.
    return GRPORecipeConfig(**arguments, reward_benchmark=request.benchmark)


def make_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    config: GRPORecipeConfig,
    request: TrainRequest,
    callbacks: list[TrainerCallback],
) -> GRPOTrainer:
    return GRPOTrainer(
        model=model,
        reward_funcs=get_reward_funcs(config.reward_funcs, config.reward_benchmark),  # type: ignore[arg-type]
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )


METHOD = TrainingMethod("grpo", METHOD_COLUMNS["grpo"], make_config, make_trainer)
