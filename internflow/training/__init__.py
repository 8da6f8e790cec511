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
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback

    from internflow.schemas import TrainRequest, TrainResult

__all__ = [
    "FAILURE_FILE",
    "METHODS",
    "REQUEST_FILE",
    "RESULT_FILE",
    "RESULT_MARKER",
    "TrainingMethod",
    "UnknownMethodError",
    "finished_result",
    "get_method",
    "is_complete_model",
]

RESULT_FILE = "result.json"
FAILURE_FILE = "failure.json"
REQUEST_FILE = "request.json"
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


def is_complete_model(folder: str | Path) -> bool:
    """A saved model folder: its config and weights are there (saving renames a finished staging
    folder into place, so a kill mid-save leaves no folder rather than half of one)."""
    path = Path(folder)
    return (path / "config.json").is_file() and any(
        p.suffix in (".safetensors", ".bin") for p in path.iterdir() if p.is_file()
    )


def finished_result(request: TrainRequest) -> TrainResult | None:
    """The result of an earlier run of this same request that finished, or None.

    Finished means: beside the checkpoints, `request.json` is this request and `result.json`
    names a complete model folder.  Anything else (another request, no result, a model that a
    kill or the retention policy removed) is not finished, and the run trains (or resumes).
    """
    from internflow.schemas import TrainRequest, TrainResult

    folder = Path(request.checkpoint_dir)
    try:
        earlier = TrainRequest.model_validate_json((folder / REQUEST_FILE).read_text(encoding="utf-8"))
        result = TrainResult.model_validate_json((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if earlier != request or not Path(result.model_path).is_dir() or not is_complete_model(result.model_path):
        return None
    return result
