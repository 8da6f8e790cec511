"""Typed findings for an iteration that raised instead of finishing: out of memory, a training run
that failed, or another stage that failed.  The campaign ledger keeps them with the failure."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from internflow.disk import is_disk_full
from internflow.execution import TrainingFailed
from internflow.schemas import Finding, TrainFailure

__all__ = ["findings_from_failure", "read_failure_file"]

# How torch, accelerate, Python and our OOM back-off word running out of memory (HF Jobs only
# gives us the job's log text).
_OUT_OF_MEMORY = re.compile(r"out of memory|OutOfMemoryError|MemoryError|out_of_memory", re.IGNORECASE)
_MESSAGE_CHARS = 400


def read_failure_file(path: str | Path) -> TrainFailure:
    """The training process's `failure.json`."""
    try:
        return TrainFailure.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValidationError) as error:
        raise ValueError(f"failure file: {path} is not a readable TrainFailure JSON ({error})") from error


def findings_from_failure(error: BaseException | str, failure: TrainFailure | None = None) -> tuple[Finding, ...]:
    """What an iteration's exception (and the training run's own `TrainFailure`, if any) says."""
    if failure is None and isinstance(error, TrainingFailed):
        failure = error.failure
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    short = text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"
    if (failure is not None and failure.kind == "out_of_memory") or _OUT_OF_MEMORY.search(text):
        attempts = failure.attempts if failure is not None else ()
        return (
            Finding(
                kind="out_of_memory",
                severity="error",
                message=(failure.message if failure is not None else short),
                suggestion="use LoRA, a shorter max_length or fewer GRPO generations (the batch back-off was spent)",
                direction="use_lora",
                evidence={"batch_settings_tried": len(attempts)},
                detector="failure",
            ),
        )
    if (failure is not None and failure.kind == "disk_full") or is_disk_full(error):
        return (
            Finding(
                kind="disk_full",
                severity="error",
                message=(failure.message if failure is not None else short),
                suggestion="free disk space in the workspace (or point --workspace at a larger disk), then re-run",
                direction="change_direction",
                detector="failure",
            ),
        )
    trained = failure is not None or isinstance(error, TrainingFailed) or "TrainingFailed" in text
    return (
        Finding(
            kind="train_failed" if trained else "stage_failed",
            severity="error",
            message=(failure.message if failure is not None else short),
            suggestion="read the error; change the settings that triggered it rather than retrying them",
            direction="change_direction",
            detector="failure",
        ),
    )
