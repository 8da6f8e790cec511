"""The README's deployment story, for real: `prefect server start` on 127.0.0.1, `prefect deploy`
from prefect.yaml, `prefect worker start` on the process pool, then the campaign deployment is
triggered through the API with parameters and completes with its artifacts; the overnight
deployment has its next run scheduled."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
POOL = "internflow-process"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = os.environ | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "INTERNFLOW_OFFLINE": "1",
    }
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (home / "server.log").read_text()
            assert time.monotonic() < deadline, "the Prefect server did not become healthy"
            time.sleep(1)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def deployed_with_worker(prefect_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    env = prefect_server
    _prefect(env, "work-pool", "create", POOL, "--type", "process")
    _prefect(env, "deploy", "--name", "campaign", "--name", "overnight", "--name", "iteration")
    log = (tmp_path_factory.mktemp("worker") / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--limit", "1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield env
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _with_api(env: dict[str, str]):
    """Point this process's client at the test server (above any session test harness's settings)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]})


@pytest.fixture(scope="module")
def triggered_campaign(deployed_with_worker, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """The campaign deployment run through the API with parameters, as the UI's Custom run does."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    workspace = tmp_path_factory.mktemp("deployed-campaign")
    with _with_api(deployed_with_worker):
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("campaign/campaign")
        config = {
            "model": str(tiny_model),
            "workspace": str(workspace),
            "max_iterations": 1,
            "eval_limit": 8,
            "recipe": "sft/smoke",
            "eval_backend": "transformers",
            "planner": "search",
        }
        run = run_deployment("campaign/campaign", parameters={"config": config}, timeout=420, poll_interval=3)
    return deployed_with_worker, deployment, run, workspace


def test_triggered_campaign_deployment_completes_with_artifacts(triggered_campaign) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    env, deployment, run, workspace = triggered_campaign
    form = deployment.parameter_openapi_schema
    assert "config" in form["properties"] and "CampaignConfig" in str(form), "the UI renders a typed form"
    assert run.state is not None and run.state.is_completed(), run.state
    with _with_api(env), get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert {"leaderboard", "campaign-report"} <= {a.key for a in artifacts}
    assert (workspace / "campaign-report.md").is_file() and (workspace / "report.json").is_file()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
    "--virtual-time-budget=20000",  # let the UI's API calls finish before the capture
]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_browser_shows_the_campaign_run_with_its_task_runs_and_artifacts(triggered_campaign, tmp_path) -> None:
    """The run page: header with its task-run count, the graph of task runs with artifact badges
    (leaderboard, campaign-report, …: drawn on a canvas, so checked on the screenshot), the logs."""
    env, _, run, _ = triggered_campaign
    url = env["PREFECT_API_URL"].removesuffix("/api") + f"/runs/flow-run/{run.id}"
    shot = tmp_path / "campaign-run.png"
    browse = [shutil.which("chromium") or "chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*browse, f"--screenshot={shot}", url], capture_output=True, timeout=180, check=True)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000, "a blank page is tiny"
    for _ in range(3):  # the single-page app sometimes isn't mounted yet when the DOM is dumped
        dom = subprocess.run([*browse, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
        if run.name in dom:
            break
    assert run.name in dom and "Task runs" in dom and "evaluate-" in dom, "the run page did not render"


def test_overnight_deployment_is_stored_with_an_active_nightly_schedule(deployed_with_worker) -> None:
    from prefect.client.orchestration import get_client

    with _with_api(deployed_with_worker), get_client(sync_client=True) as client:
        overnight = client.read_deployment_by_name("campaign/overnight")
    (schedule,) = overnight.schedules
    assert schedule.active and schedule.schedule.cron == "0 22 * * *" and schedule.schedule.timezone == "UTC"
    assert overnight.parameters["config"]["time_budget_minutes"] == 480 and not overnight.paused


# Regression: on SQLAlchemy 2.1 Prefect 3.8.8's scheduler fails ("Can't evaluate bulk DML
# statement" in the server log) and no run is ever scheduled; the lock pins SQLAlchemy 2.0.
def test_overnight_deployment_shows_its_next_run(deployed_with_worker) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with _with_api(deployed_with_worker), get_client(sync_client=True) as client:
        overnight = client.read_deployment_by_name("campaign/overnight")
        deadline = time.monotonic() + 20  # the scheduler loops every 2 s here
        while True:
            scheduled = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[overnight.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                ),
            )
            if scheduled or time.monotonic() > deadline:
                break
            time.sleep(2)
    assert scheduled, "the scheduler created no run for the overnight deployment"
    first = min(r.expected_start_time for r in scheduled if r.expected_start_time)
    assert (first.hour, first.minute) == (22, 0)
    assert scheduled[0].parameters["config"]["time_budget_minutes"] == 480
