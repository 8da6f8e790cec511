"""One writer per workspace: a second holder is refused naming the first; a holder killed with -9
leaves no lock behind, and the next one learns who died holding it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from internflow.workspace_lock import LOCK_FILE, WorkspaceBusy, claim_workspace, hold_workspace, stale_holder

ROOT = Path(__file__).resolve().parents[1]
HOLD = (
    "import sys, time\n"
    "from internflow.workspace_lock import hold_workspace\n"
    "with hold_workspace(sys.argv[1], 'campaign', flow_run_id='run-in-child', flow_run_name='campaign-arithmetic'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


def _holder(workspace: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(workspace)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def test_a_second_holder_is_refused_naming_the_running_campaign(tmp_path: Path) -> None:
    child = _holder(tmp_path)
    try:
        with pytest.raises(WorkspaceBusy) as refused, hold_workspace(tmp_path, "campaign"):
            pass
    finally:
        child.kill()
        child.wait()
    message = str(refused.value)
    assert message.startswith(f"workspace: {tmp_path.resolve()} is in use by campaign 'campaign-arithmetic'")
    assert f"pid {child.pid}" in message and "(internflow cancel run-in-child)" in message


def test_a_holder_killed_with_sigkill_leaves_no_lock_and_is_reported_stale(tmp_path: Path) -> None:
    child = _holder(tmp_path)
    child.send_signal(signal.SIGKILL)
    child.wait()

    with hold_workspace(tmp_path, "campaign", flow_run_id="next-run") as stale:
        assert stale is not None and stale.pid == child.pid and stale.flow_run_id == "run-in-child"
    with hold_workspace(tmp_path, "campaign") as after_a_clean_release:
        assert after_a_clean_release is None


def test_the_lock_is_reentrant_in_one_process_and_kept_by_the_outer_holder(tmp_path: Path) -> None:
    claim_workspace(tmp_path, "campaign")  # what the CLI does before running the campaign flow
    with hold_workspace(tmp_path, "campaign", flow_run_id="flow-run"):  # what the flow then does
        pass
    assert stale_holder(tmp_path) is None
    child = subprocess.run(
        [sys.executable, "-c", HOLD.replace("time.sleep(600)", "pass"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert child.returncode != 0 and "is in use by campaign (flow run flow-run), pid" in child.stderr
    assert "flow-run" in (tmp_path / LOCK_FILE).read_text()


def test_child_processes_do_not_keep_the_lock(tmp_path: Path) -> None:
    with hold_workspace(tmp_path, "campaign"):
        sleeper = subprocess.Popen(["sleep", "30"])  # a training child or a server outliving its starter
    try:
        started = time.monotonic()
        with hold_workspace(tmp_path, "campaign"):
            pass
        assert time.monotonic() - started < 1
    finally:
        sleeper.kill()
        sleeper.wait()
