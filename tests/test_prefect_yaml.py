"""prefect.yaml stays true: every deployment's entrypoint resolves to a flow in this repository."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[1]


def test_every_deployment_entrypoint_loads_as_a_flow(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = set()
    for deployment in spec["deployments"]:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert flow.name in {"campaign", "research-iteration"}
        names.add(deployment["name"])
    assert {"campaign", "overnight", "iteration"} <= names


def test_overnight_deployment_is_scheduled_with_a_budget() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    overnight = next(d for d in spec["deployments"] if d["name"] == "overnight")
    assert overnight["schedules"][0]["cron"] == "0 22 * * *"
    assert overnight["parameters"]["config"]["time_budget_minutes"] > 0


def test_a_deployment_for_each_work_pool_type_and_the_gpu_limit_is_documented() -> None:
    text = (ROOT / "prefect.yaml").read_text()
    spec = yaml.safe_load(text)
    pools = {d["work_pool"]["name"] for d in spec["deployments"]}
    assert {"internflow-process", "internflow-docker", "internflow-kubernetes"} <= pools
    for kind in ("process", "docker", "kubernetes"):
        assert f"--type {kind}" in text
    from tasks.train import GPU_LIMIT

    assert f"prefect gcl create {GPU_LIMIT} --limit 1" in text
