"""Out-of-memory back-off: retry from a clean slate with less memory per forward pass.

An attempt that runs out of memory is thrown away whole before the next one starts: its trainer,
model, optimizer and activations, and the traceback frames of the error, which hold all of them.
On torch before pytorch#184018 those frames also keep the saved-tensor hooks of a checkpointed
forward that failed pushed, so the next attempt's tensors are saved into the dead checkpoint and
its backward fails (`CheckpointError: A different number of tensors was saved ...`, seen on an
H200).  Clearing the frames closes that checkpoint; then the garbage is collected, any hook
still left is dropped, and the device cache is emptied.  A fresh trainer with a fresh model then
resumes from the last checkpoint, so finished steps are kept.

Each retry asks for less memory: first gradient checkpointing (if the attempt had it off, as the
GPU recipe starts), then half the per-device batch with the accumulation multiplied to match, so
the effective batch (per-device batch × accumulation) and the run's optimisation are unchanged.
Below `floor` the run stops with `OutOfMemoryFailure`, whose `TrainFailure` the diagnose stage
reads.

accelerate's `find_executable_batch_size` (which transformers' `auto_find_batch_size` wraps) is
not used: it collects garbage and empties the cache while the error, and so every tensor its
frames hold, is still alive; it keeps no effective batch, has no floor and no gradient-
checkpointing step; and transformers' version retries on the same model, whose weights the
failed steps may have changed.  Its `should_reduce_batch_size` and `clear_device_cache` are used.
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from internflow.schemas import TrainFailure

if TYPE_CHECKING:
    from transformers import Trainer

__all__ = [
    "Attempt",
    "OutOfMemoryFailure",
    "forget_error",
    "is_out_of_memory",
    "release_device_memory",
    "train_with_backoff",
]


class OutOfMemoryFailure(RuntimeError):
    """Training ran out of memory even at the smallest per-device batch allowed."""

    def __init__(self, failure: TrainFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(frozen=True)
class Attempt:
    """The memory settings of one try: per-device batch, accumulation, gradient checkpointing."""

    batch_size: int
    accumulation: int
    gradient_checkpointing: bool

    def __str__(self) -> str:
        return (
            f"per_device_train_batch_size={self.batch_size} gradient_accumulation_steps={self.accumulation} "
            f"gradient_checkpointing={'on' if self.gradient_checkpointing else 'off'}"
        )

    def after_out_of_memory(self, floor: int) -> Attempt | None:
        """The next, smaller try, or None below `floor`: checkpointing on first, then a smaller batch.

        The batch becomes its largest divisor at most half of it (8 → 4, 6 → 3, 7 → 1), so the
        accumulation grows by a whole factor and the effective batch stays exactly the same.
        """
        if not self.gradient_checkpointing:
            return Attempt(self.batch_size, self.accumulation, gradient_checkpointing=True)
        smaller = max((d for d in range(1, self.batch_size // 2 + 1) if self.batch_size % d == 0), default=0)
        if smaller < max(1, floor):
            return None
        return Attempt(smaller, self.accumulation * (self.batch_size // smaller), gradient_checkpointing=True)


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA/XPU/MPS/CPU allocator failures, as torch and accelerate word them, and Python's own."""
    import torch
    from accelerate.utils.memory import should_reduce_batch_size

    return isinstance(error, torch.OutOfMemoryError | MemoryError) or (
        isinstance(error, Exception) and should_reduce_batch_size(error)
    )


def forget_error(error: BaseException) -> str:
    """A one-line account of `error` (what, and where it was raised); then the frames of its
    traceback, and of every exception chained to it, are cleared and the tracebacks dropped, so
    nothing the failed code held stays alive through the error.  Frames still running (the
    caller's) are left as they are."""
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ is not None else []
    where = f" (in {frames[-1].name}, {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = " ".join(str(error).split())
    message = f"{type(error).__name__}: {text[:400]}{'...' if len(text) > 400 else ''}{where}"
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
            current.__traceback__ = None
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return message


def release_device_memory() -> int:
    """Collect the garbage a failed attempt left, drop saved-tensor hooks it left pushed, and empty
    the device cache.  Returns how many such hooks were dropped (0 unless a checkpointed forward
    failed on a torch before pytorch#184018 and something still held its frames)."""
    from accelerate.utils.memory import clear_device_cache

    gc.collect()
    stale = _drop_saved_tensor_hooks()
    clear_device_cache()
    return stale


def _drop_saved_tensor_hooks() -> int:
    """Between attempts no forward runs, so any saved-tensor hook still pushed is a dead one."""
    import torch

    autograd = torch._C._autograd
    top = getattr(autograd, "_top_saved_tensors_default_hooks", None)
    pop = getattr(autograd, "_pop_saved_tensors_default_hooks", None)
    if top is None or pop is None:  # private API: without it, nothing to check
        return 0

    def pushed() -> bool:
        try:
            return top(False) is not None  # (ignore_is_tracing) since torch 2.3
        except TypeError:
            return top() is not None

    dropped = 0
    while pushed() and dropped < 1000:
        pop()
        dropped += 1
    return dropped


def train_with_backoff(
    build_trainer: Callable[[int, int, bool], Trainer],
    *,
    batch_size: int,
    accumulation: int,
    floor: int,
    checkpoint: Callable[[], str | None],
    gradient_checkpointing: bool = True,
) -> tuple[Trainer, int, int]:
    """Train with `build_trainer(batch, accumulation, gradient_checkpointing)`, each out-of-memory
    error answered by a clean retry that needs less memory (see the module docstring).

    Returns the trainer that finished and the per-device batch and accumulation it used.
    Raises `OutOfMemoryFailure` (listing every attempt) once the batch would go below `floor`;
    any other error propagates at once.
    """
    attempt = Attempt(batch_size, accumulation, gradient_checkpointing)
    attempts: list[str] = []
    while True:
        attempts.append(str(attempt))
        outcome = _train_once(build_trainer, attempt, checkpoint)
        if not isinstance(outcome, str):
            return outcome, attempt.batch_size, attempt.accumulation
        stale = release_device_memory()
        following = attempt.after_out_of_memory(floor)
        if following is None:
            raise OutOfMemoryFailure(
                TrainFailure(
                    kind="out_of_memory",
                    message=(
                        f"out of memory at per_device_train_batch_size={attempt.batch_size} (floor {floor}): "
                        f"{outcome}. Use a smaller max_length, LoRA, or a larger GPU."
                    ),
                    attempts=tuple(attempts),
                )
            )
        change = (
            "turning gradient checkpointing on"
            if following.batch_size == attempt.batch_size
            else f"retrying with per_device_train_batch_size={following.batch_size} "
            f"gradient_accumulation_steps={following.accumulation}"
        )
        hooks = f"; dropped {stale} saved-tensor hook(s) the failed forward left" if stale else ""
        print(f"internflow: out of memory with {attempt} ({outcome}){hooks}{_still_allocated()}; {change}", flush=True)
        attempt = following


def _still_allocated() -> str:
    """On CUDA, what the released attempt left allocated (a few hundred MiB at most when nothing leaked)."""
    import torch

    if not torch.cuda.is_available():
        return ""
    return f"; {torch.cuda.memory_allocated() / 2**30:.2f} GiB still allocated after releasing it"


def _train_once(
    build_trainer: Callable[[int, int, bool], Trainer], attempt: Attempt, checkpoint: Callable[[], str | None]
) -> Trainer | str:
    """The finished trainer, or, after an out-of-memory error, its message: by then the error's
    frames are cleared, and the trainer and model die with this frame."""
    trainer = build_trainer(attempt.batch_size, attempt.accumulation, attempt.gradient_checkpointing)
    try:
        trainer.train(resume_from_checkpoint=checkpoint())
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        return forget_error(error)
    return trainer
