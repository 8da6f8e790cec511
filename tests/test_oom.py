"""Out-of-memory back-off on a real SFT trainer whose model cannot fit more than a few rows at a
time: half the per-device batch, twice the accumulation, down to a floor, then a typed failure."""

from __future__ import annotations

import contextlib
import math
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

    def build(batch_size: int, accumulation: int, gradient_checkpointing: bool) -> Any:
        built.append((batch_size, accumulation))
        arguments = base_arguments(request) | {
            "per_device_train_batch_size": batch_size,
            "gradient_accumulation_steps": accumulation,
            "gradient_checkpointing": gradient_checkpointing,
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

    def build(batch_size: int, accumulation: int, gradient_checkpointing: bool) -> Any:
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


class FakeDevice:
    """The accelerator's memory, as far as these tests need it: a micro-batch of more than `rows`
    rows, or (with `resident`) any model of an earlier attempt still alive, its memory not given
    back, makes the MLP of a decoder layer raise CUDA's out-of-memory error, inside the layer's
    checkpointed forward, where the H200 raised it (the forward, not its recomputation in the
    backward, which holds one layer's activations at a time).  Installed as a global module hook,
    so the code under test is internflow's own, untouched."""

    def __init__(self, rows: int, *, resident: bool = True) -> None:
        self.rows, self.resident = rows, resident
        self.models: list[Any] = []  # a weak reference to each model that ran, in order
        self.failures: list[tuple[int, int, bool]] = []  # (rows, earlier models alive, inside a checkpoint)

    def __call__(self, module: Any, args: tuple[Any, ...]) -> None:
        import weakref

        import torch
        from transformers.models.llama.modeling_llama import LlamaForCausalLM, LlamaMLP

        if isinstance(module, LlamaForCausalLM) and not any(ref() is module for ref in self.models):
            self.models.append(weakref.ref(module))
        in_backward = torch._C._current_graph_task_id() != -1
        if isinstance(module, LlamaMLP) and torch.is_grad_enabled() and not in_backward:
            rows = args[0].shape[0]
            held = sum(ref() is not None for ref in self.models[:-1]) if self.resident else 0
            if rows > self.rows or held:
                inside = torch._C._autograd._top_saved_tensors_default_hooks(False) is not None
                self.failures.append((rows, held, inside))
                raise torch.OutOfMemoryError(
                    f"CUDA out of memory. Tried to allocate 2.00 GiB for {rows} rows "
                    f"({held} earlier model(s) still resident)."
                )

    def __enter__(self) -> FakeDevice:
        import torch

        self._handle = torch.nn.modules.module.register_module_forward_pre_hook(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


def checkpoint_before_pytorch_184018(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Non-reentrant `torch.utils.checkpoint.checkpoint` as torch 2.11 (the H200's) runs it: an
    error in the forward leaves the checkpoint's saved-tensor hooks pushed until its generator is
    collected (later torch throws the error into the generator, pytorch#184018)."""
    from torch.utils.checkpoint import _checkpoint_without_reentrant_generator, noop_context_fn

    kwargs.pop("use_reentrant", None)
    preserve = kwargs.pop("preserve_rng_state", True)
    context_fn = kwargs.pop("context_fn", noop_context_fn)
    determinism_check = kwargs.pop("determinism_check", "default")
    debug = kwargs.pop("debug", False)
    early_stop = kwargs.pop("early_stop", True)
    generator = _checkpoint_without_reentrant_generator(
        function, preserve, context_fn, determinism_check, debug, early_stop, *args, **kwargs
    )
    next(generator)
    result = function(*args, **kwargs)
    with contextlib.suppress(StopIteration):
        next(generator)
    return result


def test_out_of_memory_inside_a_checkpointed_forward_frees_the_attempt_and_finishes_at_the_batch_that_fits(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The H200's first fault: a real OOM left the failed attempt's model, optimizer and
    activations alive (in the error's frames), so every halved retry ran out of memory too."""
    from internflow.training.common import run_training

    request = method_request(tiny_model, tmp_path, "oom-frees", max_steps=3, per_device_train_batch_size=8)
    with FakeDevice(rows=2) as device:
        result = run_training(request)
    assert (result.steps, result.per_device_train_batch_size, result.gradient_accumulation_steps) == (3, 2, 4)
    # Out of memory at 8 and 4 rows, inside the checkpointed forward, never for a model left over.
    assert device.failures == [(8, 0, True), (4, 0, True)]
    assert all(ref() is None for ref in device.models[:-1])
    printed = capsys.readouterr().out
    assert "out of memory with per_device_train_batch_size=8 gradient_accumulation_steps=1" in printed
    assert "retrying with per_device_train_batch_size=2 gradient_accumulation_steps=4" in printed


def test_out_of_memory_inside_a_checkpointed_forward_on_torch_2_11_leaves_no_hooks_for_the_retry(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The H200's second fault: after the OOMs the retry that fitted failed with `CheckpointError:
    A different number of tensors was saved during the original forward and recomputation`, its
    tensors saved into the dead checkpoint of the forward that had run out of memory."""
    import transformers.modeling_utils

    from internflow.training.common import run_training

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", checkpoint_before_pytorch_184018)
    request = method_request(tiny_model, tmp_path, "oom-hooks", max_steps=3, per_device_train_batch_size=8)
    with FakeDevice(rows=4, resident=False) as device:
        result = run_training(request)
    assert device.failures == [(8, 0, True)]
    assert (result.steps, result.per_device_train_batch_size, result.gradient_accumulation_steps) == (3, 4, 2)
    assert all(math.isfinite(point.loss) for point in result.losses)


def test_gpu_attempt_turns_gradient_checkpointing_on_before_halving_the_batch() -> None:
    import torch

    built: list[tuple[int, int, bool]] = []

    class Trainer:
        def __init__(self, batch_size: int, checkpointing: bool) -> None:
            self.batch_size, self.checkpointing = batch_size, checkpointing

        def train(self, resume_from_checkpoint: str | None = None) -> None:
            if not self.checkpointing or self.batch_size > 4:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    def build(batch_size: int, accumulation: int, gradient_checkpointing: bool) -> Any:
        built.append((batch_size, accumulation, gradient_checkpointing))
        return Trainer(batch_size, gradient_checkpointing)

    _, batch, accumulation = train_with_backoff(
        build, batch_size=16, accumulation=2, floor=1, checkpoint=lambda: None, gradient_checkpointing=False
    )
    assert built == [(16, 2, False), (16, 2, True), (8, 4, True), (4, 8, True)]
    assert (batch, accumulation) == (4, 8)


def test_odd_batches_keep_the_effective_batch_exact() -> None:
    from internflow.training.oom import Attempt

    def chain(batch: int, floor: int = 1) -> list[tuple[int, int]]:
        steps, attempt = [], Attempt(batch, 3, gradient_checkpointing=True)
        while attempt is not None:
            steps.append((attempt.batch_size, attempt.accumulation))
            attempt = attempt.after_out_of_memory(floor)  # type: ignore[assignment]
        return steps

    assert chain(12) == [(12, 3), (6, 6), (3, 12), (1, 36)]
    assert chain(7) == [(7, 3), (1, 21)]
    assert chain(8, floor=2) == [(8, 3), (4, 6), (2, 12)]


def test_forgetting_an_error_frees_what_its_frames_held() -> None:
    import weakref

    from internflow.training.oom import forget_error

    class Activations:
        pass

    def forward(held: Activations) -> None:
        raise MemoryError("out of memory")

    held = Activations()
    alive = weakref.ref(held)
    try:
        forward(held)
    except MemoryError as error:
        del held
        assert alive() is not None  # the failed frame still holds it
        message = forget_error(error)
        assert alive() is None
    assert message.startswith("MemoryError: out of memory (in forward, test_oom.py:")


def test_saved_tensor_hooks_left_pushed_are_dropped_between_attempts() -> None:
    import torch

    from internflow.training.oom import release_device_memory

    torch._C._autograd._push_saved_tensors_default_hooks(lambda t: t, lambda t: t)
    assert release_device_memory() == 1
    assert torch._C._autograd._top_saved_tensors_default_hooks(False) is None
    assert release_device_memory() == 0
