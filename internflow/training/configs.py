"""What every method module (`sft`, `dpo`, `grpo`) builds on: internflow's fields on top of each TRL
config, the LoRA config they ask for, and the `TrainingMethod` record a method module provides.

Method modules import this, never `common` or the `registry` that loads them: the package's
imports run one way (common → registry ⇢ method modules → configs).  Importing this module imports
neither torch nor TRL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from internflow.schemas import IterationParams
from internflow.training.arguments import RECIPE_FIELDS

if TYPE_CHECKING:
    from collections.abc import Callable

    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback

    from internflow.schemas import TrainRequest

__all__ = ["RecipeFields", "TrainingMethod", "lora_config"]


@dataclass(frozen=True)
class TrainingMethod:
    """What a method module provides: its dataset columns, its typed config and its trainer."""

    name: str
    required_columns: tuple[str, ...]
    make_config: Callable[[TrainRequest, dict[str, Any]], Any]
    make_trainer: Callable[
        [PreTrainedModel, PreTrainedTokenizerBase, Dataset, Any, TrainRequest, list[TrainerCallback]], Trainer
    ]


def _from_params(name: str) -> Any:
    """A dataclass field with the IterationParams field's default and description as its help."""
    info = IterationParams.model_fields[name]
    return field(default=info.default, metadata={"help": info.description or name})


@dataclass
class RecipeFields:
    """internflow's fields on top of each TRL config (mixed into `sft`/`dpo`/`grpo` configs): the
    `arguments.RECIPE_FIELDS`, with IterationParams' defaults, help and limits."""

    use_lora: bool = _from_params("use_lora")
    lora_r: int = _from_params("lora_r")
    lora_alpha: int = _from_params("lora_alpha")
    min_per_device_train_batch_size: int = _from_params("min_per_device_train_batch_size")

    def __post_init__(self) -> None:
        # The schema's limits (e.g. the OOM floor at least 1): a ValueError naming the field.
        IterationParams.model_validate({name: getattr(self, name) for name in RECIPE_FIELDS})
        super().__post_init__()  # type: ignore[misc]  # the TRL config that follows in the MRO


def lora_config(config: RecipeFields) -> LoraConfig | None:
    from peft import LoraConfig

    if not config.use_lora:
        return None
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM")
