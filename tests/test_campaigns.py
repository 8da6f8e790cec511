"""CLI parity with the UI: list campaigns, answer or cancel a paused one, export the report, open the
trackio dashboard — against the same Prefect API and workspace the UI reads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from internflow.deployments.cli import app
from tests.test_approval import _config, _paused_campaign, _run_in_background

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(prefect_harness) -> Iterator[CliRunner]:
    """The commands point the process at a workspace (os.environ): restore it for the next test."""
    saved = dict(os.environ)
    yield CliRunner()
    os.environ.clear()
    os.environ.update(saved)


def _state_of(run_id: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    return state.type.value if state else "none"


def _paused(tiny_model: Path, workspace: Path, **overrides: object) -> tuple[threading.Thread, dict, str]:
    thread, box = _run_in_background(_config(tiny_model, workspace, **overrides))
    return thread, box, _paused_campaign(workspace)


def test_campaigns_lists_runs_and_resume_answers_the_approval(cli, tiny_model, tmp_path) -> None:
    thread, box, run_id = _paused(tiny_model, tmp_path)
    listed = cli.invoke(app, ["campaigns", "-w", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert run_id in listed.output and "Paused" in listed.output
    answered = cli.invoke(app, ["resume", run_id, "--reject", "--note", "from the cli", "-w", str(tmp_path)])
    assert answered.exit_code == 0, answered.output
    thread.join(timeout=120)
    assert box["state"].result().stop_reason == "approval: reject (human): from the cli"
    exported = cli.invoke(app, ["report", "-w", str(tmp_path), "-o", str(tmp_path / "out.md")])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "out.md").read_text() == (tmp_path / "campaign-report.md").read_text()


def test_cancel_stops_a_paused_campaign_without_running_an_iteration(cli, tiny_model, tmp_path) -> None:
    thread, box, run_id = _paused(tiny_model, tmp_path, approval_timeout_s=8, approval_default="approve")
    cancelled = cli.invoke(app, ["cancel", run_id, "-w", str(tmp_path)])
    assert cancelled.exit_code == 0, cancelled.output
    assert _state_of(run_id) in {"CANCELLING", "CANCELLED"}
    thread.join(timeout=120)
    assert not box["state"].is_completed(), "a cancelled campaign must not be revived by the approval default"
    assert not list((tmp_path / "models").glob("*")), "no iteration trained after the cancel"


def test_resume_and_report_refuse_bad_input_with_named_errors(cli, tmp_path) -> None:
    missing = cli.invoke(app, ["report", "-w", str(tmp_path)])
    assert missing.exit_code == 2 and "no report.json" in missing.output
    bad = tmp_path / "params.json"
    bad.write_text("{not json")
    refused = cli.invoke(app, ["resume", "00000000-0000-0000-0000-000000000000", "--params", str(bad)])
    assert refused.exit_code == 2 and "params:" in refused.output


def test_dashboard_serves_trackio_on_the_workspace(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "internflow.deployments.cli", "dashboard", "-w", str(tmp_path)]
    command += ["--port", str(port)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "dashboard did not start"
                time.sleep(0.5)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"127.0.0.1:{port}" in output
