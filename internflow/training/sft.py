"""Supervised fine-tuning: TRL's SFTTrainer on prompt/completion rows (loss on the completion)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trl import SFTConfig, SFTTrainer

from internflow.training import TrainingMethod
from internflow.training.common import RecipeFields, lora_config
from internflow.training.data_check import METHOD_COLUMNS

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from internflow.schemas import TrainRequest

__all__ = ["METHOD", "SFTRecipeConfig"]


@dataclass
class SFTRecipeConfig(RecipeFields, SFTConfig):
    """TRL's SFTConfig plus internflow's recipe fields."""


def make_config(request: TrainRequest, arguments: dict[str, Any]) -> SFTRecipeConfig:
    return SFTRecipeConfig(**arguments, max_length=request.params.max_length)


def make_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    config: SFTRecipeConfig,
    request: TrainRequest,
    callbacks: list[TrainerCallback],
) -> SFTTrainer:
    return SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )


METHOD = TrainingMethod("sft", METHOD_COLUMNS["sft"], make_config, make_trainer)
