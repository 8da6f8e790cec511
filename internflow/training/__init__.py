"""The TRL training run itself: SFT, DPO or GRPO, full or LoRA, resumable, with OOM back-off.

Run as `python -m internflow.training REQUEST.json` (what every execution backend launches): it
reads a `TrainRequest`, trains, and writes `result.json` (a `TrainResult`) or `failure.json` (a
`TrainFailure`) beside the checkpoints.  The plumbing shared by all methods lives in `common`;
each method module (`sft`, `dpo`, `grpo`) only adds its typed config and its trainer.  Importing
this package imports neither torch nor TRL.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback

    from internflow.schemas import TrainRequest

__all__ = [
    "FAILURE_FILE",
    "METHODS",
    "RESULT_FILE",
    "RESULT_MARKER",
    "TrainingMethod",
    "UnknownMethodError",
    "get_method",
]

RESULT_FILE = "result.json"
FAILURE_FILE = "failure.json"
# The result also goes to stdout on one line, for backends that only see the logs (HF Jobs).
RESULT_MARKER = "internflow-result: "


class UnknownMethodError(ValueError):
    pass


@dataclass(frozen=True)
class TrainingMethod:
    """What a method module provides: its dataset columns, its typed config and its trainer."""

    name: str
    required_columns: tuple[str, ...]
    make_config: Callable[[TrainRequest, dict[str, Any]], Any]
    make_trainer: Callable[
        [PreTrainedModel, PreTrainedTokenizerBase, Dataset, Any, TrainRequest, list[TrainerCallback]], Trainer
    ]


# name → module; imported only when the method is used (TRL and torch are heavy).
METHODS: dict[str, str] = {
    "sft": "internflow.training.sft",
    "dpo": "internflow.training.dpo",
    "grpo": "internflow.training.grpo",
}


def get_method(name: str) -> TrainingMethod:
    if name not in METHODS:
        raise UnknownMethodError(f"method: unknown training method {name!r}; known: {', '.join(sorted(METHODS))}")
    method: TrainingMethod = importlib.import_module(METHODS[name]).METHOD
    return method
