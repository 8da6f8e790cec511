"""Training rows measured in tokens, as the trainer will build them: the model's own tokenizer and
chat template.  A character limit cannot tell whether a row fits the recipe's `max_length`
(TRL's DPOTrainer drops rows whose prompt fills it, SFT truncates the answer away), so the
dataset stage quarantines rows over it as `too_long` instead of letting them vanish in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from internflow.data.formats import Example, Message

__all__ = ["token_lengths"]


def _lengths(tokenizer: Any, conversations: Sequence[list[Message]], generation_prompt: bool) -> list[int]:
    texts = [
        tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=generation_prompt)
        for conversation in conversations
    ]
    # The template writes its own special tokens; a second BOS would overcount.
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def token_lengths(examples: Sequence[Example], tokenizer: Any, method: str) -> list[int]:
    """Tokens per example as `method`'s trainer sees it: SFT the prompt and completion; DPO the
    prompt and the longer of the chosen and rejected answers; GRPO the prompt ready for the
    answer (what the policy generates from).  Raises ValueError when the tokenizer has no chat
    template."""
    if not examples:
        return []
    if method == "grpo":
        return _lengths(tokenizer, [e.prompt for e in examples], True)
    lengths = _lengths(tokenizer, [e.prompt + (e.completion or []) for e in examples], False)
    if method == "dpo":
        rejected = _lengths(tokenizer, [e.prompt + (e.rejected or []) for e in examples], False)
        lengths = [max(chosen, other) for chosen, other in zip(lengths, rejected, strict=True)]
    return lengths
