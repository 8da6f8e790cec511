"""The train stage's request and result, and why a run failed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from internflow.schemas.base import Frozen
from internflow.schemas.data import PreparedDataset
from internflow.schemas.params import IterationParams

__all__ = ["LossPoint", "TrainFailure", "TrainRequest", "TrainResult"]


class TrainRequest(Frozen):
    init_model: str = Field(description="The model training starts from: the base model or the best so far.")
    init_fingerprint: str
    data: PreparedDataset
    params: IterationParams
    checkpoint_dir: str
    model_dir: str
    trackio_dir: str
    trackio_project: str
    run_name: str
    benchmark: str = Field("arithmetic", description="Benchmark whose answer extractor the GRPO rewards use.")
    backend: str = Field("local", description="Where training runs: 'local' (child process) or 'hf-jobs'.")


class TrainFailure(Frozen):
    """Why a training run failed, written by the training process for the diagnose stage."""

    kind: Literal["out_of_memory", "disk_full", "error"]
    message: str
    attempts: tuple[str, ...] = Field((), description="Batch settings tried, in order (OOM back-off).")


class LossPoint(Frozen):
    step: int
    loss: float


class TrainResult(Frozen):
    model_path: str
    adapter_path: str | None = Field(
        None, description="LoRA runs: the adapter before merging, which a running vLLM server hot-loads."
    )
    adapter_base: str | None = Field(None, description="The model the adapter was trained on.")

    def adapter(self) -> tuple[str, str] | None:
        """(adapter folder, the model it was trained on) for a LoRA run, else None."""
        return (self.adapter_path, self.adapter_base) if self.adapter_path and self.adapter_base else None

    steps: int
    losses: tuple[LossPoint, ...]
    final_loss: float | None
    rewards: tuple[LossPoint, ...] = Field((), description="GRPO: mean reward per logged step.")
    per_device_train_batch_size: int | None = Field(None, description="Batch actually used (after OOM back-off).")
    gradient_accumulation_steps: int | None = None
    resumed_from_step: int | None = Field(None, description="Checkpoint step a re-run continued from (after a crash).")
    runtime_s: float
    trackio_project: str
    trackio_run: str
    checkpoint_dir: str
