"""The train task: TRL SFT in a child process on a tiny model, full and LoRA, logged to trackio."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prefect import flow

from internflow.schemas import IterationParams, PreparedDataset, TrainRequest, TrainResult
from internflow.tasks.train import TrainingFailed, train_model


def _data(tmp_path: Path, rows: int = 64) -> PreparedDataset:
    import json

    path = tmp_path / "train.jsonl"
    lines = [
        {
            "prompt": [{"role": "user", "content": f"{a} + {a} ="}],
            "completion": [{"role": "assistant", "content": str(2 * a)}],
        }
        for a in range(rows)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return PreparedDataset(path=str(path), rows=rows, sources=(), fingerprint="test")


def _request(model: Path, tmp_path: Path, **params: object) -> TrainRequest:
    settings = {
        "max_steps": 12,
        "per_device_train_batch_size": 8,
        "learning_rate": 3e-3,
        "warmup_steps": 0,
        "lr_scheduler_type": "constant_with_warmup",
        "max_length": 64,
    } | params
    run = "lora" if params.get("use_lora") else "full"
    return TrainRequest(
        init_model=str(model),
        init_fingerprint="tiny",
        data=_data(tmp_path),
        params=IterationParams(**settings),
        checkpoint_dir=str(tmp_path / "checkpoints" / run),
        model_dir=str(tmp_path / "models" / run),
        trackio_dir=str(tmp_path / "trackio"),
        trackio_project="test",
        run_name=run,
    )


@flow
def _train(request: TrainRequest) -> TrainResult:
    return train_model.with_options(retries=0)(request)


@pytest.mark.parametrize("use_lora", [False, True], ids=["full", "lora"])
def test_sft_lowers_loss_and_logs_every_step_to_trackio(
    prefect_harness, tiny_model: Path, tmp_path: Path, use_lora: bool
) -> None:
    request = _request(tiny_model, tmp_path, use_lora=use_lora, **({"learning_rate": 1e-2} if use_lora else {}))
    result = _train(request)

    assert result.steps == 12
    first, last = result.losses[0].loss, sum(p.loss for p in result.losses[-3:]) / 3
    assert last < first, [p.loss for p in result.losses]
    assert (Path(result.model_path) / "config.json").is_file()
    assert not list(Path(result.model_path).glob("adapter_*")), "LoRA must be merged into a plain model folder"
    assert list(Path(result.checkpoint_dir).glob("checkpoint-*")), "checkpoints are kept"
    with sqlite3.connect(tmp_path / "trackio" / "test.db") as db:
        steps = [row[0] for row in db.execute("SELECT step FROM metrics WHERE run_name = ?", (request.run_name,))]
    assert len(set(steps)) >= 12


def test_child_failure_is_reported_with_its_output(prefect_harness, tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    missing.mkdir()
    (missing / "config.json").write_text("{}")
    with pytest.raises(TrainingFailed, match="exited with code"):
        _train(_request(missing, tmp_path))


def test_training_holds_a_slot_of_the_gpu_concurrency_limit(prefect_harness, tiny_model: Path, tmp_path: Path) -> None:
    import threading

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from internflow.tasks.train import GPU_LIMIT

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=1))
        seen: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                seen.append(client.read_global_concurrency_limit_by_name(GPU_LIMIT).active_slots)
                done.wait(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            _train(_request(tiny_model, tmp_path, max_steps=2))
        finally:
            done.set()
            watcher.join()
            after = client.read_global_concurrency_limit_by_name(GPU_LIMIT).active_slots
            client.delete_global_concurrency_limit_by_name(GPU_LIMIT)
    assert 1 in seen, "the train stage occupies the gpu slot while it trains"
    assert max(seen) == 1 and after == 0, "one slot, released afterwards"


def test_the_training_child_gets_no_credentials_it_does_not_need(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import threading
    import time

    from internflow.execution.local import LocalProcess

    secrets = {"HF_TOKEN": "hf_test_token_not_for_children", "OPENAI_API_KEY": "sk-test-key-not-for-children"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    request = _request(tiny_model, tmp_path, max_steps=30)  # a local base model: no Hub, no token
    environs: list[bytes] = []
    marker = b"internflow.training\0" + request.checkpoint_dir.encode()
    training = threading.Thread(target=LocalProcess().run, args=(request, lambda line: None))
    training.start()
    while training.is_alive() and not environs:
        time.sleep(0.05)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                    environs.append(Path(f"/proc/{pid}/environ").read_bytes())
            except OSError:
                continue
    training.join()

    assert environs, "the training child was not seen"
    assert b"TRACKIO_DIR=" in environs[0]
    for name, value in secrets.items():
        assert value.encode() not in environs[0], f"{name} reached the training child"


def test_without_a_gpu_limit_training_says_so_once_instead_of_warning_each_time(prefect_harness) -> None:
    """Regression: every train task logged "Concurrency limits ['gpu'] do not exist - skipping acquisition"."""
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    from internflow.tasks.train import _gpu_slot, _say_unthrottled

    _say_unthrottled.cache_clear()

    @flow
    def two_jobs() -> str:
        from prefect.runtime import flow_run

        for _ in range(2):
            with _gpu_slot():
                pass
        return str(flow_run.id)

    run_id = two_jobs()
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        messages = [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]
    assert sum("no 'gpu' concurrency limit" in m for m in messages) == 1, messages
    assert not [m for m in messages if "do not exist" in m]
