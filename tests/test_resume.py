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
