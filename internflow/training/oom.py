"""Out-of-memory back-off: retry with half the per-device batch and twice the accumulation.

The effective batch (per-device batch × accumulation) stays the same, so the run's optimisation
is unchanged; only memory per forward pass shrinks.  Each retry builds a fresh trainer (fresh
model, freed device cache) and resumes from the last checkpoint, so finished steps are kept.
Below the floor the run stops with `OutOfMemoryFailure`, whose `TrainFailure` the diagnose stage
reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from internflow.schemas import TrainFailure

if TYPE_CHECKING:
    from transformers import Trainer

__all__ = ["OutOfMemoryFailure", "is_out_of_memory", "train_with_backoff"]


class OutOfMemoryFailure(RuntimeError):
    """Training ran out of memory even at the smallest per-device batch allowed."""

    def __init__(self, failure: TrainFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA/XPU/MPS/CPU allocator failures, as torch and accelerate word them, and Python's own."""
    import torch
    from accelerate.utils.memory import should_reduce_batch_size

    return isinstance(error, torch.OutOfMemoryError | MemoryError) or (
        isinstance(error, Exception) and should_reduce_batch_size(error)
    )


def train_with_backoff(
    build_trainer: Callable[[int, int], Trainer],
    *,
    batch_size: int,
    accumulation: int,
    floor: int,
    checkpoint: Callable[[], str | None],
) -> tuple[Trainer, int, int]:
    """Train with `build_trainer(batch, accumulation)`; halve the batch on OOM down to `floor`.

    Returns the trainer that finished and the batch settings it used.
    """
    from accelerate.utils.memory import clear_device_cache

    attempts: list[str] = []
    while True:
        trainer = build_trainer(batch_size, accumulation)
        attempts.append(f"per_device_train_batch_size={batch_size} gradient_accumulation_steps={accumulation}")
        try:
            trainer.train(resume_from_checkpoint=checkpoint())
            return trainer, batch_size, accumulation
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            oom = error
        del trainer
        clear_device_cache(garbage_collection=True)
        if batch_size // 2 < max(1, floor):
            raise OutOfMemoryFailure(
                TrainFailure(
                    kind="out_of_memory",
                    message=(
                        f"out of memory at per_device_train_batch_size={batch_size} (floor {floor}): {oom}. "
                        "Use a smaller max_length, LoRA, or a larger GPU."
                    ),
                    attempts=tuple(attempts),
                )
            ) from oom
        print(f"internflow: out of memory at per_device_train_batch_size={batch_size}; halving it", flush=True)
        batch_size, accumulation = batch_size // 2, accumulation * 2
