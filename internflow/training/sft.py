"""Supervised fine-tuning: TRL's SFTTrainer on prompt/completion rows (loss on the completion, unless
`completion_only_loss` is off)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trl import SFTConfig, SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from internflow.training.configs import RecipeFields, TrainingMethod, lora_config
from internflow.training.data_check import METHOD_COLUMNS

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from internflow.schemas import TrainRequest

__all__ = ["METHOD", "SFTRecipeConfig"]


@dataclass
class SFTRecipeConfig(RecipeFields, SFTConfig):
    """TRL's SFTConfig plus internflow's recipe fields."""

    padding_free_rows: bool = field(
        default=False,
        metadata={
            "help": "Concatenate each micro-batch's rows (truncated to max_length) into one padding-free sequence "
            "whose position ids restart per row; the GPU recipe turns it on where FlashAttention is installed, "
            "and the model then attends with it. (TRL's own `padding_free` refuses "
            "max_length without packing, and packing would change how many rows a step sees.)"
        },
    )


def make_config(request: TrainRequest, arguments: dict[str, Any]) -> SFTRecipeConfig:
    return SFTRecipeConfig(**arguments)  # max_length, completion_only_loss: `arguments.TRL_ARGUMENTS`


def make_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    config: SFTRecipeConfig,
    request: TrainRequest,
    callbacks: list[TrainerCallback],
) -> SFTTrainer:
    collator = None
    if config.padding_free_rows:
        # TRL's own collator in its padding-free mode; TRL tokenizes, builds the labels and
        # truncates the rows before it, as it does for padded batches.
        assert tokenizer.pad_token_id is not None  # load_chat_tokenizer guarantees one
        pad_to = config.pad_to_multiple_of
        collator = DataCollatorForLanguageModeling(
            pad_token_id=tokenizer.pad_token_id,
            padding_free=True,
            pad_to_multiple_of=pad_to if isinstance(pad_to, int) else None,
        )
        # What SFTTrainer does when it builds its collator itself: the model agrees with the tokenizer.
        model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        if model.device.type == "cuda":
            # Attention within each row from the row boundaries, at the cost of the rows alone (SDPA,
            # which CPU runs keep, masks the whole flattened micro-batch: right, but quadratic in it).
            model.set_attn_implementation("flash_attention_2")
    return SFTTrainer(
        model=model,
        args=config,
        data_collator=collator,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )


METHOD = TrainingMethod("sft", METHOD_COLUMNS["sft"], make_config, make_trainer)
