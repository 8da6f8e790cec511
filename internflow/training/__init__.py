"""The TRL training run itself: SFT, DPO or GRPO, full or LoRA, resumable, with OOM back-off.

Run as `python -m internflow.training REQUEST.json` (what every execution backend launches): it
reads a `TrainRequest`, trains, and writes `result.json` (a `TrainResult`) or `failure.json` (a
`TrainFailure`) beside the checkpoints (`results`).  The plumbing shared by all methods lives in
`common`; each method module (`sft`, `dpo`, `grpo`) only adds its typed config (on `configs`) and
its trainer, and is loaded by name (`registry`).  Imports inside the package run one way:
common → registry ⇢ method modules → configs.  Importing this package imports neither torch nor TRL.
"""

from __future__ import annotations

from internflow.training.registry import METHODS, UnknownMethodError, get_method
from internflow.training.results import (
    FAILURE_FILE,
    REQUEST_FILE,
    RESULT_FILE,
    RESULT_MARKER,
    finished_result,
    is_complete_model,
)

__all__ = [
    "FAILURE_FILE",
    "METHODS",
    "REQUEST_FILE",
    "RESULT_FILE",
    "RESULT_MARKER",
    "UnknownMethodError",
    "finished_result",
    "get_method",
    "is_complete_model",
]
