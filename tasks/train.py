"""Training stage: run the request on its execution backend and return the typed result.

The backend (`internflow.execution`: a local child process by default, or Hugging Face Jobs)
streams noteworthy output into the Prefect task log.  The `gpu` global concurrency limit keeps
one training job per GPU across every flow on the Prefect server (create it with
`prefect gcl create gpu --limit 1`).  Without it the stage runs unthrottled and says so once per
process in the log (not Prefect's warning on every job); it is not created for you, since a limit
governs every flow on the server.
Cached on the request (base model fingerprint, data fingerprint, parameters), so an identical
iteration re-run is served from Prefect's persisted result, and a re-run after a crash resumes
from the last checkpoint.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.concurrency.sync import concurrency
from prefect.logging import get_run_logger

from internflow.execution import TrainingFailed, get_backend
from internflow.reporting import trackio_run_url
from internflow.retention import pruned_count
from internflow.schemas import IterationParams, PreparedDataset, TrainRequest, TrainResult
from internflow.workspace import Workspace

__all__ = ["GPU_LIMIT", "TrainingFailed", "build_train_request", "gpu_slot", "train_model"]

GPU_LIMIT = "gpu"


def build_train_request(
    init_model: str,
    init_fingerprint: str,
    data: PreparedDataset,
    params: IterationParams,
    workspace: Workspace,
    benchmark: str,
    backend: str = "local",
) -> TrainRequest:
    """Content-addressed run name: the same starting model, data and parameters give the same run
    (so its checkpoints are found again after a crash)."""
    # Scoring is not training: a screened idea re-scored on the whole subset reuses its model.
    params = params.scored_in_full()
    identity = f"{init_fingerprint}|{data.fingerprint}|{params.model_dump_json()}"
    run_name = f"{params.method}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
    return TrainRequest(
        init_model=init_model,
        init_fingerprint=init_fingerprint,
        data=data,
        params=params,
        checkpoint_dir=str(workspace.checkpoints_dir / run_name),
        model_dir=str(workspace.models_dir / run_name),
        trackio_dir=str(workspace.trackio_dir),
        trackio_project="internflow",
        run_name=run_name,
        benchmark=benchmark,
        backend=backend,
    )


def _pruned(task_ctx: Any, inputs: dict[str, Any]) -> str | None:
    """None until the retention policy deletes the run's model; then a new key, so that a cached
    result never names a deleted model."""
    count = pruned_count(inputs["request"].checkpoint_dir)
    return None if count is None else f"pruned-{count}"


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Not a full disk or memory exhausted at the smallest batch: a retry would fail the same way."""
    try:
        state.result()
    except TrainingFailed as error:
        return error.failure is None or error.failure.kind == "error"
    except Exception:
        return True
    return True


@task(
    name="train",
    cache_policy=INPUTS + TASK_SOURCE + CachePolicy.from_cache_key_fn(_pruned),
    persist_result=True,
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=_worth_retrying,
)
def train_model(request: TrainRequest) -> TrainResult:
    """Train one recipe with TRL on the request's backend (a local child process or HF Jobs), holding a
    slot of the `gpu` concurrency limit; returns the TrainResult (model folder, steps, losses) and
    publishes the `train-loss` and `trackio` artifacts. Raises TrainingFailed (retried once unless
    the disk is full or memory ran out at the smallest batch)."""
    logger = get_run_logger()
    backend = get_backend(request.backend)
    with gpu_slot():  # already held when the iteration flow took it around this task
        result = backend.run(request, logger.info)
    _publish(result)
    return result


def _gpu_limit_exists() -> bool:
    """Whether the Prefect server has the `gpu` global concurrency limit (asked per job: one API call)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
        return True
    except ObjectNotFound:
        _say_unthrottled()
        return False


@functools.cache
def _say_unthrottled() -> None:
    """Once per process, instead of Prefect's warning on every train task."""
    get_run_logger().info(
        "no '%s' concurrency limit on this Prefect server: training jobs are not throttled "
        "(`prefect gcl create %s --limit <GPUs>` keeps one job per GPU)",
        GPU_LIMIT,
        GPU_LIMIT,
    )


_HELD: ContextVar[bool] = ContextVar("gpu_slot_held", default=False)


@contextmanager
def gpu_slot() -> Iterator[None]:
    """One slot of the `gpu` limit for a training job, when the server has that limit.  The
    iteration flow takes it around the train task, so that the task's run in Prefect's history
    spans exactly the time its job held a GPU (iterations running at the same time wait for a
    slot before their train task starts); called alone, the task takes one itself."""
    if _HELD.get() or not _gpu_limit_exists():
        yield
        return
    held = _HELD.set(True)
    try:
        with concurrency(GPU_LIMIT, occupy=1, strict=False):
            yield
    finally:
        _HELD.reset(held)


_gpu_slot = gpu_slot  # the name the tests knew


def _publish(result: TrainResult) -> None:
    # A thinned loss curve: enough points to see the shape without flooding the artifact.
    stride = max(1, len(result.losses) // 20)
    create_table_artifact(
        key="train-loss",
        table=[{"step": p.step, "loss": round(p.loss, 4)} for p in result.losses[::stride]],
        description=(
            f"{result.steps} steps in {result.runtime_s:.0f}s; final loss {result.final_loss}; "
            f"model {result.model_path}; trackio {result.trackio_project}/{result.trackio_run}"
        ),
    )
    create_link_artifact(
        key="trackio",
        link=trackio_run_url(result.trackio_project, result.trackio_run),
        link_text=f"{result.trackio_run} in the trackio dashboard",
        description="This run's training curves; start the dashboard first: "
        f"`internflow dashboard -w {Path(result.checkpoint_dir).parent.parent}`.",
    )
