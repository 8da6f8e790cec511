"""A training run killed with SIGKILL after a checkpoint resumes from it when re-run: the step
counter continues, and trackio holds every step exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from internflow.schemas import TrainResult
from internflow.training import FAILURE_FILE, RESULT_FILE
from tests.training_data import method_request

ROOT = Path(__file__).resolve().parents[1]


def _child(request_file: Path, trackio_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {"TRACKIO_DIR": str(trackio_dir), "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "internflow.training", str(request_file)]
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _trackio_steps(trackio_dir: Path, run: str) -> list[int]:
    database = trackio_dir / "test.db"
    if not database.is_file():  # trackio writes in the background: a kill -9 may come first
        return []
    with sqlite3.connect(database) as db:
        return sorted(row[0] for row in db.execute("SELECT step FROM metrics WHERE run_name = ?", (run,)))


def test_sigkill_after_a_checkpoint_then_rerun_resumes_without_losing_or_repeating_steps(
    tiny_model: Path, tmp_path: Path
) -> None:
    # 20 steps, a checkpoint every 10 (base_arguments' floor): killed between them.
    request = method_request(
        tiny_model, tmp_path, "resume", max_steps=20, per_device_train_batch_size=4, max_length=32, learning_rate=3e-3
    )
    checkpoints = Path(request.checkpoint_dir)
    checkpoints.mkdir(parents=True)
    request_file = checkpoints / "request.json"
    request_file.write_text(request.model_dump_json())
    trackio_dir = Path(request.trackio_dir)

    first = _child(request_file, trackio_dir, tmp_path / "first.log")
    deadline = time.monotonic() + 300
    while not (checkpoints / "checkpoint-10" / "trainer_state.json").is_file():
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert not (checkpoints / RESULT_FILE).exists() and not (checkpoints / FAILURE_FILE).exists()
    before = _trackio_steps(trackio_dir, request.run_name)
    assert len(before) == len(set(before))

    second = _child(request_file, trackio_dir, tmp_path / "second.log")
    assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()[-3000:]

    result = TrainResult.model_validate_json((checkpoints / RESULT_FILE).read_text())
    assert result.resumed_from_step == 10
    assert result.steps == 20
    assert [p.step for p in result.losses] == list(range(1, 21)), "log history continues across the kill"
    trained_again = (tmp_path / "second.log").read_text().count("{'loss'")
    assert trained_again == 10, "the re-run trained only the steps after the checkpoint"
    assert _trackio_steps(trackio_dir, request.run_name) == list(range(1, 21)), "each step exactly once in trackio"


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_finished_request_run_again_is_not_retrained_and_keeps_its_model(tiny_model: Path, tmp_path: Path) -> None:
    from internflow.execution.local import LocalProcess

    request = method_request(tiny_model, tmp_path, "again", max_steps=4, per_device_train_batch_size=4, max_length=32)
    first = LocalProcess().run(request, lambda line: None)
    weights = Path(first.model_path) / "model.safetensors"
    sha, written = _sha256(weights), weights.stat().st_mtime_ns
    said: list[str] = []

    again = LocalProcess().run(request, said.append)  # a re-run, a Prefect cache miss: the same request

    assert again.steps == first.steps == 4, "a re-run must not train a step more"
    assert _sha256(weights) == sha and weights.stat().st_mtime_ns == written, "the model must not be replaced"
    assert any("already trained" in line for line in said)


@pytest.mark.parametrize(("train_fraction", "steps"), [(1.0, 6), (0.5, 3)], ids=["full", "screen"])
def test_a_kill_while_the_final_model_is_saved_resumes_to_max_steps_not_one_more(
    tiny_model: Path, tmp_path: Path, train_fraction: float, steps: int
) -> None:
    request = method_request(
        tiny_model, tmp_path, "final", max_steps=6, per_device_train_batch_size=4, max_length=32,
        train_fraction=train_fraction, warmup_steps=0,
    )  # fmt: skip
    checkpoints, model = Path(request.checkpoint_dir), Path(request.model_dir)
    checkpoints.mkdir(parents=True)
    request_file = checkpoints / "request.json"
    request_file.write_text(request.model_dump_json())
    trackio_dir = Path(request.trackio_dir)
    assert _child(request_file, trackio_dir, tmp_path / "first.log").wait(timeout=600) == 0
    trained = _sha256(model / "model.safetensors")
    # What a kill -9 during the model's save leaves: the last checkpoint, half a model, no result.
    (checkpoints / RESULT_FILE).unlink()
    model.rename(model.with_name(model.name + ".partial"))
    (model.with_name(model.name + ".partial") / "model.safetensors").write_bytes(b"half")

    assert _child(request_file, trackio_dir, tmp_path / "second.log").wait(timeout=600) == 0

    result = TrainResult.model_validate_json((checkpoints / RESULT_FILE).read_text())
    assert result.steps == steps and result.resumed_from_step == steps, "resuming never goes past the run's steps"
    assert [p.step for p in result.losses] == list(range(1, steps + 1))
    assert _sha256(model / "model.safetensors") == trained, "the model is the final checkpoint's, untouched"
    assert not model.with_name(model.name + ".partial").exists()
    assert _trackio_steps(trackio_dir, request.run_name) == list(range(1, steps + 1))


def test_a_kill_before_the_first_step_checkpoint_keeps_the_training_of_the_last_minutes(
    tiny_model: Path, tmp_path: Path
) -> None:
    # 30 steps, a step checkpoint every 10; a time cadence of 0.06 s checkpoints long before step 10.
    request = method_request(tiny_model, tmp_path, "timed", max_steps=30, per_device_train_batch_size=4, max_length=32)
    checkpoints = Path(request.checkpoint_dir)
    checkpoints.mkdir(parents=True)
    request_file = checkpoints / "request.json"
    request_file.write_text(request.model_dump_json())
    os.environ["INTERNFLOW_CHECKPOINT_MINUTES"] = "0.001"
    try:
        first = _child(request_file, Path(request.trackio_dir), tmp_path / "first.log")
    finally:
        del os.environ["INTERNFLOW_CHECKPOINT_MINUTES"]
    deadline = time.monotonic() + 300
    while not (done := [p for p in checkpoints.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]):
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = max(int(p.name.rsplit("-", 1)[-1]) for p in done)
    assert 0 < kept < 10, f"the first checkpoint came from the step cadence (step {kept}), not the time cadence"

    assert _child(request_file, Path(request.trackio_dir), tmp_path / "second.log").wait(timeout=600) == 0
    result = TrainResult.model_validate_json((checkpoints / RESULT_FILE).read_text())
    assert result.steps == 30 and result.resumed_from_step is not None and 0 < result.resumed_from_step < 10
