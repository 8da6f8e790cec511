"""The GPU training recipe: which arguments a device gets (a pure function, checked for every
method), and, on this CPU, that the recipe trains what the CPU arguments train: padding-free
SFT rows and the accumulation folded into one forward pass give the same losses."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="internflow-trackio-"))

from internflow.schemas import IterationParams  # noqa: E402
from internflow.training.device import DeviceFacts, device_arguments, folded_batch  # noqa: E402
from tests.training_data import method_request  # noqa: E402

CPU = DeviceFacts(cuda=False)
H200 = DeviceFacts(cuda=True, bf16=True, name="NVIDIA H200")


def test_cpu_arguments_are_what_internflow_always_used() -> None:
    params = IterationParams(per_device_train_batch_size=8, gradient_accumulation_steps=4, max_steps=400)
    assert device_arguments(params, CPU) == {
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": True,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 4,
        "logging_steps": 1,
    }


@pytest.mark.parametrize("method", ["sft", "dpo", "grpo"])
def test_gpu_arguments_fill_the_device_for_every_method(method: str) -> None:
    params = IterationParams(method=method, per_device_train_batch_size=8, gradient_accumulation_steps=4, max_steps=400)
    arguments = device_arguments(params, H200)
    assert arguments["bf16"] is True and arguments["use_cpu"] is False
    assert arguments["gradient_checkpointing"] is False  # the OOM back-off turns it on when memory needs it
    # The same 32 rows per optimizer step, in one forward pass (the rows fit the token budget).
    assert (arguments["per_device_train_batch_size"], arguments["gradient_accumulation_steps"]) == (32, 1)
    assert arguments["logging_steps"] == 10  # about 40 loss points, not a device sync every step
    assert arguments["use_liger_kernel"] is False  # not installed
    assert "padding_free_rows" not in arguments  # no FlashAttention: padded rows
    assert "use_vllm" not in arguments
    with_flash_attention = device_arguments(params, DeviceFacts(cuda=True, bf16=True, flash_attention=True))
    assert with_flash_attention.get("padding_free_rows", False) is (method == "sft")


def test_optional_kernels_and_vllm_are_used_only_when_installed_on_a_gpu() -> None:
    grpo = IterationParams(method="grpo")
    equipped = DeviceFacts(cuda=True, bf16=True, liger=True, vllm=True)
    assert device_arguments(grpo, equipped)["use_liger_kernel"] is True
    assert device_arguments(grpo, equipped)["use_vllm"] is True
    assert device_arguments(grpo, equipped)["vllm_mode"] == "colocate"
    assert "use_vllm" not in device_arguments(IterationParams(method="sft"), equipped)
    assert "use_liger_kernel" not in device_arguments(grpo, DeviceFacts(cuda=False, liger=True, vllm=True))


def test_folding_keeps_the_rows_per_step_within_the_token_budget() -> None:
    assert folded_batch(8, 4, 256) == (32, 1)
    assert folded_batch(32, 8, 1024) == (64, 4)  # 64 × 1024 tokens fill the 65,536-token budget
    assert folded_batch(4096, 1, 1024) == (4096, 1)  # never below the planner's own batch
    assert folded_batch(6, 4, 4096) == (12, 2)  # 24 rows: the largest multiple of 6 dividing 24 that fits
    assert folded_batch(6, 5, 4096) == (6, 5)  # 30 rows: 30 do not fit, and 12 or 18 do not divide 30
    params = IterationParams(
        method="dpo", per_device_train_batch_size=8, gradient_accumulation_steps=8, max_length=1024
    )
    assert device_arguments(params, H200)["per_device_train_batch_size"] == 32  # a DPO row is two sequences


def _losses(tiny_model: Path, tmp_path: Path, run: str, device: DeviceFacts, method: str = "sft") -> list[float]:
    from internflow.models import load_model_and_tokenizer
    from internflow.training import get_method
    from internflow.training.common import base_arguments, load_training_data

    request = method_request(
        tiny_model,
        tmp_path,
        run,
        method=method,
        max_steps=3,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
    )
    training = get_method(method)
    arguments = base_arguments(request, device) | {"use_cpu": False, "bf16": False, "save_strategy": "no"}
    config = training.make_config(request, arguments)
    model, tokenizer = load_model_and_tokenizer(request.init_model)
    trainer: Any = training.make_trainer(
        model, tokenizer, load_training_data(request, training.required_columns), config, request, []
    )
    trainer.train()
    assert (trainer.args.per_device_train_batch_size, trainer.args.gradient_accumulation_steps) == (
        (8, 1) if device.cuda else (4, 2)
    )
    assert trainer.args.gradient_checkpointing is (not device.cuda)
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_sft_gpu_recipe_on_this_cpu_trains_padding_free_with_the_losses_of_padded_batches(
    tiny_model: Path, tmp_path: Path
) -> None:
    padded = _losses(tiny_model, tmp_path, "padded", CPU)
    padding_free = _losses(tiny_model, tmp_path, "padding-free", DeviceFacts(cuda=True, flash_attention=True))
    assert len(padded) == len(padding_free) == 3
    assert all(math.isclose(a, b, rel_tol=2e-3) for a, b in zip(padded, padding_free, strict=True)), (
        padded,
        padding_free,
    )


def test_padding_free_batches_hold_no_pad_tokens_and_restart_positions_per_row(
    tiny_model: Path, tmp_path: Path
) -> None:
    from internflow.models import load_model_and_tokenizer
    from internflow.training import get_method
    from internflow.training.common import base_arguments, load_training_data

    request = method_request(tiny_model, tmp_path, "collated", max_steps=1, per_device_train_batch_size=4)
    sft = get_method("sft")
    gpu = DeviceFacts(cuda=True, flash_attention=True)
    config = sft.make_config(request, base_arguments(request, gpu) | {"bf16": False})
    model, tokenizer = load_model_and_tokenizer(request.init_model)
    trainer: Any = sft.make_trainer(
        model, tokenizer, load_training_data(request, ("prompt", "completion")), config, request, []
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    assert int((batch["input_ids"] == tokenizer.pad_token_id).sum()) == 0
    assert int((batch["position_ids"] == 0).sum()) == 4  # one restart per row


@pytest.mark.parametrize("method", ["dpo", "grpo"])
def test_dpo_and_grpo_train_with_the_gpu_recipe_on_this_cpu(tiny_model: Path, tmp_path: Path, method: str) -> None:
    losses = _losses(tiny_model, tmp_path, f"gpu-{method}", DeviceFacts(cuda=True), method=method)
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
