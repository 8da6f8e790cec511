"""Out-of-memory back-off on a real SFT trainer whose model cannot fit more than a few rows at a
time: half the per-device batch, twice the accumulation, down to a floor, then a typed failure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="internflow-trackio-"))

from internflow.schemas import TrainRequest  # noqa: E402
from internflow.training.oom import OutOfMemoryFailure, is_out_of_memory, train_with_backoff  # noqa: E402
from tests.training_data import method_request  # noqa: E402


def _capped_builder(request: TrainRequest, max_rows: int, built: list[tuple[int, int]]) -> Any:
    """Real SFT trainers whose model raises CUDA's OOM error for a forward pass over > max_rows rows."""
    import torch

    from internflow.models import load_model_and_tokenizer
    from internflow.training import get_method
    from internflow.training.common import base_arguments, load_training_data

    method = get_method("sft")
    dataset = load_training_data(request, method.required_columns)

    def raise_when_too_big(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        rows = kwargs["input_ids"].shape[0]
        if rows > max_rows:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate a batch of {rows} rows.")

    def build(batch_size: int, accumulation: int) -> Any:
        built.append((batch_size, accumulation))
        arguments = base_arguments(request) | {
            "per_device_train_batch_size": batch_size,
            "gradient_accumulation_steps": accumulation,
        }
        model, tokenizer = load_model_and_tokenizer(request.init_model)
        model.register_forward_pre_hook(raise_when_too_big, with_kwargs=True)
        return method.make_trainer(model, tokenizer, dataset, method.make_config(request, arguments), request, [])

    return build


def _request(tiny_model: Path, tmp_path: Path) -> TrainRequest:
    return method_request(tiny_model, tmp_path, "oom", max_steps=3, per_device_train_batch_size=8)


def test_oom_on_the_first_attempt_halves_the_batch_and_keeps_the_effective_batch(
    tiny_model: Path, tmp_path: Path
) -> None:
    request = _request(tiny_model, tmp_path)
    built: list[tuple[int, int]] = []
    build = _capped_builder(request, max_rows=4, built=built)
    trainer, batch, accumulation = train_with_backoff(
        build, batch_size=8, accumulation=1, floor=1, checkpoint=lambda: None
    )
    assert built == [(8, 1), (4, 2)]
    assert (batch, accumulation) == (4, 2)
    assert trainer.state.global_step == 3
    assert trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps == 8


def test_oom_at_the_floor_is_a_typed_failure_listing_every_attempt(tiny_model: Path, tmp_path: Path) -> None:
    request = _request(tiny_model, tmp_path)
    built: list[tuple[int, int]] = []
    build = _capped_builder(request, max_rows=1, built=built)
    with pytest.raises(OutOfMemoryFailure) as caught:
        train_with_backoff(build, batch_size=8, accumulation=1, floor=2, checkpoint=lambda: None)
    failure = caught.value.failure
    assert failure.kind == "out_of_memory"
    assert "per_device_train_batch_size=2 (floor 2)" in failure.message
    assert [a.split()[0] for a in failure.attempts] == [
        "per_device_train_batch_size=8",
        "per_device_train_batch_size=4",
        "per_device_train_batch_size=2",
    ]
    assert built == [(8, 1), (4, 2), (2, 4)]


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    class Broken:
        def train(self, resume_from_checkpoint: str | None = None) -> None:
            raise ValueError("bad data")

    def build(batch_size: int, accumulation: int) -> Any:
        calls.append(batch_size)
        return Broken()

    with pytest.raises(ValueError, match="bad data"):
        train_with_backoff(build, batch_size=8, accumulation=1, floor=1, checkpoint=lambda: None)
    assert calls == [8]


def test_cpu_and_cuda_allocator_failures_count_as_out_of_memory() -> None:
    import torch

    assert is_out_of_memory(RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: 9 GB"))
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
