"""Direct preference optimisation: TRL's DPOTrainer on prompt/chosen/rejected rows.

With LoRA the reference model is the adapter-free base (no copy); with full training TRL keeps a
frozen copy of the starting model as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trl import DPOConfig, DPOTrainer

from internflow.training.configs import RecipeFields, TrainingMethod, lora_config
from internflow.training.data_check import METHOD_COLUMNS

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from internflow.schemas import TrainRequest

__all__ = ["METHOD", "DPORecipeConfig"]


@dataclass
class DPORecipeConfig(RecipeFields, DPOConfig):
    """TRL's DPOConfig plus internflow's recipe fields."""


def make_config(request: TrainRequest, arguments: dict[str, Any]) -> DPORecipeConfig:
    return DPORecipeConfig(**arguments)  # max_length, beta: `arguments.TRL_ARGUMENTS`


def make_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    config: DPORecipeConfig,
    request: TrainRequest,
    callbacks: list[TrainerCallback],
) -> DPOTrainer:
    return DPOTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )


METHOD = TrainingMethod("dpo", METHOD_COLUMNS["dpo"], make_config, make_trainer)
