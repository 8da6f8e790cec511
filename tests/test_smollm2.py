"""The real embedded SmolLM2-135M through the real train and evaluate tasks (slow: ~1-2 min)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prefect import flow

from internflow.data.prepare import DatasetRequest
from internflow.models import DEFAULT_MODEL, model_fingerprint, resolve_model
from internflow.schemas import EvalRequest, EvalResult, IterationParams, TrainRequest, TrainResult
from internflow.tasks.dataset import prepare_dataset
from internflow.tasks.evaluate import evaluate_model
from internflow.tasks.train import train_model
from internflow.workspace import Workspace

pytestmark = pytest.mark.slow


@flow
def _few_steps(workspace: Workspace, base: str) -> tuple[TrainResult, EvalResult]:
    params = IterationParams(max_steps=3, per_device_train_batch_size=2, max_train_samples=16, warmup_steps=0)
    data = prepare_dataset(
        DatasetRequest(datasets=params.datasets, max_train_samples=params.max_train_samples, seed=0,
                       benchmark="arithmetic", workspace=workspace)
    )  # fmt: skip
    trained = train_model.with_options(retries=0)(
        TrainRequest(
            init_model=base,
            init_fingerprint=model_fingerprint(base),
            data=data,
            params=params,
            checkpoint_dir=str(workspace.checkpoints_dir / "smol"),
            model_dir=str(workspace.models_dir / "smol"),
            trackio_dir=str(workspace.trackio_dir),
            trackio_project="internflow",
            run_name="smol",
        )
    )
    evaluation = evaluate_model(
        EvalRequest(model_path=trained.model_path, model_fingerprint="smol", benchmark="arithmetic", limit=8, seed=0,
                    label="smol", samples_dir=workspace.samples_dir, backend="transformers")
    )  # fmt: skip
    return trained, evaluation


def test_smollm2_trains_a_few_steps_and_is_evaluated(prefect_harness, tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "ws")
    trained, evaluation = _few_steps(workspace, resolve_model(DEFAULT_MODEL))
    assert trained.steps == 3 and all(math.isfinite(p.loss) for p in trained.losses)
    assert (Path(trained.model_path) / "model.safetensors").stat().st_size > 500_000_000
    assert evaluation.n == 8 and (workspace.trackio_dir / "internflow.db").is_file()
