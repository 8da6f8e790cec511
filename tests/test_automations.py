"""The automations and limits prefect.yaml ships, on a throwaway Prefect server with a worker:
`internflow.best.improved` runs the publish deployment with the event's workspace and gain (it
publishes only past its threshold), a crashed campaign run calls the alert Webhook block, and
the campaign deployments are stored with their concurrency limit of one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.prefect_server import ROOT, PrefectServer, prefect_cli, using_api
from tests.replay_server import Recording, ReplayServer

pytestmark = pytest.mark.slow

POOL = "internflow-process"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with PrefectServer(tmp_path_factory.mktemp("prefect-automations")) as server:
        prefect_cli(server.env, "work-pool", "create", POOL, "--type", "process")
        prefect_cli(server.env, "deploy", "--name", "publish", "--name", "notify-crashed", "--name", "overnight",
                    "--name", "campaign")  # fmt: skip
        server.worker(POOL, "automations")
        try:
            yield server
        except BaseException:
            print(server.logs())
            raise


def _final_run_of(server: PrefectServer, deployment: str, timeout_s: float = 300):  # type: ignore[no-untyped-def]
    """The first flow run of `deployment` once it reached a final state."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout_s
    with using_api(server.env), get_client(sync_client=True) as client:
        target = client.read_deployment_by_name(deployment)
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[target.id])))
            if runs and runs[0].state is not None and runs[0].state.is_final():
                return runs[0]
            time.sleep(3)
    raise AssertionError(f"no finished run of {deployment} in {timeout_s} s:\n{server.logs()}")


def test_campaign_deployments_are_stored_with_a_concurrency_limit_of_one(server: PrefectServer) -> None:
    from prefect.client.orchestration import get_client

    with using_api(server.env), get_client(sync_client=True) as client:
        overnight = client.read_deployment_by_name("campaign/overnight")
        on_demand = client.read_deployment_by_name("campaign/campaign")
    for deployment, strategy in ((overnight, "CANCEL_NEW"), (on_demand, "ENQUEUE")):
        assert deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options is not None
        assert deployment.concurrency_options.collision_strategy.value == strategy


def test_a_best_improved_event_runs_publish_which_keeps_to_its_threshold(server: PrefectServer, tmp_path: Path) -> None:
    from internflow.best import BestPointer, write_pointer

    pointer = BestPointer(campaign_id="c0ffee", index=2, model_path=str(tmp_path / "models" / "run"),
                          run_name="run", accuracy=0.32, n=50, baseline_accuracy=0.30)  # fmt: skip
    write_pointer(tmp_path, pointer)  # +2 pt: below the automation's 5 pt
    emit = (
        "from internflow import events; from prefect.events.worker import EventsWorker; "
        f"events.emit(events.BEST_IMPROVED, 'c0ffee', {str(tmp_path)!r}, 'arithmetic', "
        "{'index': 2, 'gain_points': 2.0}); EventsWorker.drain_all()"
    )
    subprocess.run([sys.executable, "-c", emit], cwd=ROOT, env=server.env, check=True, timeout=120)

    run = _final_run_of(server, "publish-best/publish")
    assert run.parameters["workspace"] == str(tmp_path) and float(run.parameters["gain_points"]) == 2.0
    assert run.state is not None and run.state.is_completed(), run.state
    assert run.state.message == "iteration 2 gains +2.0 pt, below 5: not pushed"


def test_a_crashed_campaign_run_calls_the_alert_webhook(server: PrefectServer) -> None:
    from prefect import flow
    from prefect.blocks.webhook import Webhook
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed, Running

    from internflow.flows.publish import ALERT_WEBHOOK

    @flow(name="campaign")
    def stand_in() -> None:  # a run of a flow named campaign, that no worker will pick up
        pass

    with ReplayServer({"/hook": Recording(b"ok")}) as endpoint, using_api(server.env):
        Webhook(url=f"{endpoint.url}/hook").save(ALERT_WEBHOOK, overwrite=True)
        with get_client(sync_client=True) as client:
            run = client.create_flow_run(stand_in, state=Running())
            client.set_flow_run_state(run.id, Crashed(message="the worker's process was killed"), force=True)
        deadline = time.monotonic() + 300
        while not endpoint.requests_to("/hook") and time.monotonic() < deadline:
            time.sleep(3)
        calls = endpoint.requests_to("/hook")
    assert calls, f"the webhook was never called:\n{server.logs()}"
    body = json.loads(calls[0].body)
    assert body["flow_run_id"] == str(run.id) and "the worker's process was killed" in body["text"]
