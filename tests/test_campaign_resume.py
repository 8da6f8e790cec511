"""Overnight drills on `internflow run` with the tiny model: a second launch on the workspace is
refused naming the first; kill -9 of the first leaves no Prefect server behind; a re-run marks the
killed runs Crashed and resumes the campaign from its record (same iterations, time spent counted)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "internflow.deployments.cli"]


@dataclass
class Drill:
    workspace: Path
    killed_run: str  # the first campaign's flow run id
    killed_record: dict  # report.json as the kill left it
    second_launch: subprocess.CompletedProcess[str]
    left_behind: list[str]  # processes of the killed command still alive 60 s after the kill
    rerun: subprocess.CompletedProcess[str]


def _processes_of(workspace: Path) -> list[str]:
    """Processes whose environment points Prefect at this workspace's history (the CLI's children)."""
    marker = f"PREFECT_HOME={workspace / 'prefect'}\0".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{pid}/environ").read_bytes():
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{pid}: {command[:200]}")
        except OSError:
            continue
    return found


def _wait_for(condition, what: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, f"the campaign ended before {what}:\n" + log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s"
        time.sleep(0.2)


def _iterations_recorded(report: Path) -> int:
    try:
        return len(json.loads(report.read_text())["iterations"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.fixture(scope="module")
def drill(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Drill:
    workspace = tmp_path_factory.mktemp("overnight")
    args = [
        "run", "--model", str(tiny_model), "--workspace", str(workspace), "--recipe", "sft/smoke",
        "--planner", "search", "--eval-backend", "transformers", "--max-iterations", "2", "--eval-limit", "8",
        "--time-budget-minutes", "60",
    ]  # fmt: skip
    env = os.environ | {"INTERNFLOW_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)  # the command's own history, as a user's shell has it
    log = workspace.parent / f"{workspace.name}-first.log"
    first = subprocess.Popen([*CLI, *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        report = workspace / "report.json"
        _wait_for(lambda: _iterations_recorded(report) == 1, "first iteration", first, log)
        second = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        training = lambda: len(list((workspace / "checkpoints").glob("*/request.json"))) == 2  # noqa: E731
        _wait_for(training, "second iteration's training", first, log)
        killed_record = json.loads(report.read_text())
        killed_run = json.loads((workspace / ".internflow.lock").read_text())["flow_run_id"]
        first.send_signal(signal.SIGKILL)  # no finally, no atexit
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    deadline = time.monotonic() + 60
    while (left := _processes_of(workspace)) and time.monotonic() < deadline:
        time.sleep(0.5)
    rerun = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1200)
    return Drill(workspace, killed_run, killed_record, second, left, rerun)


def test_a_second_campaign_on_the_workspace_is_refused_naming_the_running_one(drill: Drill) -> None:
    refused = drill.second_launch
    assert refused.returncode == 2, refused.stderr[-2000:]
    line = " ".join(refused.stderr.split())
    assert f"is in use by campaign 'campaign-arithmetic' (flow run {drill.killed_run})" in line
    assert "Traceback" not in refused.stderr


def test_kill_9_of_internflow_run_leaves_no_prefect_server_or_child_running(drill: Drill) -> None:
    assert drill.left_behind == []


def test_a_rerun_after_kill_9_resumes_the_campaign_from_its_record(drill: Drill) -> None:
    assert drill.rerun.returncode == 0, drill.rerun.stdout[-3000:] + drill.rerun.stderr[-3000:]
    report = json.loads((drill.workspace / "report.json").read_text())
    killed = drill.killed_record
    assert killed["stop_reason"] == "running" and len(killed["iterations"]) == 1
    assert report["iterations"][0]["flow_run_id"] == killed["iterations"][0]["flow_run_id"], "same history"
    assert [it["index"] for it in report["iterations"]] == [1, 2], "the next iteration planned from the record"
    assert report["iterations"][0]["params"] != report["iterations"][1]["params"]
    assert report["stop_reason"] == "iteration budget spent (2 of 2)"
    assert report["resumed_from"] == [drill.killed_run]
    assert report["elapsed_s"] > killed["elapsed_s"], "the time already spent is counted"


def test_the_killed_runs_are_marked_crashed_in_the_run_history(drill: Drill) -> None:
    with sqlite3.connect(drill.workspace / "prefect" / "prefect.db") as db:
        states = dict(db.execute("SELECT id, state_type FROM flow_run").fetchall())
        crashed = [name for (name,) in db.execute("SELECT name FROM flow_run WHERE state_type = 'CRASHED'")]
    assert states[drill.killed_run] == "CRASHED"
    assert sorted(crashed) == ["campaign-arithmetic", "iteration-2"]
    assert "RUNNING" not in states.values()
