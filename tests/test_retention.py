"""Bounded disk on the tiny model: finished runs lose their optimizer checkpoints, only the best and
the last models stay, the campaign stops before an iteration the disk cannot hold, and a disk that
fills during training fails that iteration and stops the campaign cleanly with the reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from internflow.schemas import CampaignConfig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

# The write hook at the place the disk fills: every file the trainer opens for writing in a
# checkpoint folder fails as a full disk does (ENOSPC).  Loaded into the training child through
# PYTHONPATH (sitecustomize runs at interpreter start); nothing else writes into checkpoint-* folders.
FULL_DISK_HOOK = """
import builtins, errno, os

_open = builtins.open


def _open_on_a_full_disk(file, mode="r", *args, **kwargs):
    if any(flag in mode for flag in "wax+") and "/checkpoint-" in os.fspath(file):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
    return _open(file, mode, *args, **kwargs)


builtins.open = _open_on_a_full_disk
"""


def test_retention_keeps_the_best_and_last_models_and_the_campaign_stops_before_the_disk_runs_out(
    prefect_harness, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from internflow.flows.campaign import campaign

    workspace = tmp_path / "ws"
    real_disk_usage = shutil.disk_usage

    def a_disk_with_room_for_two_runs(path: str | os.PathLike[str]) -> shutil._ntuple_diskusage:  # type: ignore[name-defined]
        usage = real_disk_usage(path)
        if not Path(path).resolve().is_relative_to(workspace.resolve()):
            return usage
        runs = len(list(workspace.glob("checkpoints/*/result.json")))
        return usage._replace(free=10 * 2**30 if runs < 2 else 2**20)  # then 1 MB left

    monkeypatch.setattr(shutil, "disk_usage", a_disk_with_room_for_two_runs)
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    config = CampaignConfig(
        model=str(tiny_model), workspace=str(workspace), max_iterations=3, eval_limit=8, recipe="sft/smoke",
        planner="search", eval_backend="transformers", keep_last_models=1,
    )  # fmt: skip

    report = campaign(config)

    assert len(report.iterations) == 2 and not report.failures
    assert report.stop_reason.startswith("disk: the next iteration needs ~"), report.stop_reason
    assert "(2× the most an iteration added), 1 MB free in" in report.stop_reason
    assert list(workspace.glob("checkpoints/*/checkpoint-*")) == [], "finished runs keep no optimizer checkpoints"
    best = next((r for r in report.iterations if r.index == report.best_iteration), None)
    kept = {report.iterations[-1].train.model_path} | ({best.train.model_path} if best else set())
    assert {str(p) for p in (workspace / "models").iterdir()} == kept
    first = report.iterations[0].train
    if first.model_path not in kept:
        assert (Path(first.checkpoint_dir) / "pruned").read_text() == "1"


def test_a_disk_that_fills_while_training_fails_the_iteration_and_stops_the_campaign_cleanly(
    tiny_model: Path, tmp_path: Path
) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FULL_DISK_HOOK)
    workspace = tmp_path / "ws"
    env = os.environ | {"INTERNFLOW_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(hook)])}
    env.pop("PREFECT_API_URL", None)
    command = [
        sys.executable, "-m", "internflow.deployments.cli", "run", "--model", str(tiny_model),
        "--workspace", str(workspace), "--recipe", "sft/smoke", "--planner", "search",
        "--eval-backend", "transformers", "--max-iterations", "3", "--eval-limit", "8",
    ]  # fmt: skip
    # INTERNFLOW_CHECKPOINT_MINUTES: the smoke recipe's 8 steps end in a checkpoint whatever the cadence.
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1200, check=False)

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    report = json.loads((workspace / "report.json").read_text())
    assert report["iterations"] == [] and len(report["failures"]) == 1, "one failed iteration, then the stop"
    assert [f["kind"] for f in report["failures"][0]["findings"]] == ["disk_full"]
    assert report["failures"][0]["error"].startswith("TrainingFailed: training ran out of disk space: no space left")
    assert report["stop_reason"].startswith(f"disk full: iteration 1 could not write to {workspace}")
    assert f"stop reason: disk full: iteration 1 could not write to {workspace}" in " ".join(done.stdout.split())
    # Prefect logs the failed train task and iteration once each; no retry, no cascade of tracebacks.
    assert output.count("Traceback (most recent call last)") <= 2, output[-6000:]


def test_a_real_disk_filled_by_another_process_mid_training_ends_the_campaign_cleanly(
    tiny_model: Path, tmp_path: Path
) -> None:
    """The same drill on a real 40 MB tmpfs (run history included), filled to the last byte as the
    first iteration starts training; where mounting is not permitted the write-hook test above stands."""
    import time

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        workspace = disk / "ws"
        env = os.environ | {"INTERNFLOW_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        env.pop("PREFECT_API_URL", None)
        command = [
            sys.executable, "-m", "internflow.deployments.cli", "run", "--model", str(tiny_model),
            "--workspace", str(workspace), "--recipe", "sft/smoke", "--planner", "search",
            "--eval-backend", "transformers", "--max-iterations", "3", "--eval-limit", "8",
        ]  # fmt: skip
        log = tmp_path / "campaign.log"
        campaign = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.monotonic() + 600
        while not list(workspace.glob("checkpoints/*/request.json")):
            assert campaign.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        with (disk / "ballast").open("wb", buffering=0) as ballast:  # another process takes every byte left
            try:
                while ballast.write(b"\0" * 2**16):
                    pass
            except OSError:
                pass
        assert campaign.wait(timeout=1200) == 0, log.read_text()[-4000:]
        output = log.read_text()
        assert "stop reason: disk full: iteration 1 could not write to" in " ".join(output.split())
        assert output.count("Traceback (most recent call last)") <= 2, output[-6000:]
        assert json.loads((workspace / "report.json").read_text())["baseline"], "report.json keeps its last version"
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
