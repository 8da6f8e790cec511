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
        assert flow.name in {"campaign", "research-iteration", "publish-best", "notify-crashed"}
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
    from internflow.tasks.train import GPU_LIMIT

    assert f"prefect gcl create {GPU_LIMIT} --limit 1" in text


def _deployments() -> dict[str, dict]:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {d["name"]: d for d in spec["deployments"]}


def test_every_pool_a_campaign_runs_on_has_an_iteration_deployment() -> None:
    """A campaign's work_pool needs a research-iteration deployment on that pool (preflight refuses one without)."""
    deployments = _deployments()

    def pools(module: str) -> set[str]:
        return {d["work_pool"]["name"] for d in deployments.values() if d["entrypoint"].startswith(module)}

    iterations, campaigns = pools("flows/iteration.py"), pools("flows/campaign.py")
    assert campaigns <= iterations
    for d in deployments.values():
        pool = (d.get("parameters") or {}).get("config", {}).get("work_pool")
        assert pool is None or pool in iterations, d["name"]


def test_scheduled_and_on_demand_campaigns_never_share_a_busy_workspace() -> None:
    deployments = _deployments()
    overnight, campaign = deployments["overnight"], deployments["campaign"]
    assert overnight["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert campaign["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert overnight["parameters"]["config"]["workspace"] != "internflow-workspace", "one workspace per deployment"


def test_automations_parse_as_prefect_deployment_triggers() -> None:
    """What `prefect deploy` builds from each trigger: the publish automation on the best-improved event
    (its threshold a parameter), the alert on a crashed run of the campaign flow."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    from internflow.events import BEST_IMPROVED

    deployments = _deployments()
    (publish,) = [DeploymentEventTrigger.model_validate(t) for t in deployments["publish"]["triggers"]]
    assert publish.expect == {BEST_IMPROVED} and publish.parameters is not None
    assert publish.parameters["min_gain_points"] > 0 and "internflow.workspace" in publish.parameters["workspace"]
    (crashed,) = [DeploymentEventTrigger.model_validate(t) for t in deployments["notify-crashed"]["triggers"]]
    assert crashed.expect == {"prefect.flow-run.Crashed"}


def test_served_deployments_are_prefect_yamls_on_the_process_pool() -> None:
    """`python -m internflow.deployments.serve` runs prefect.yaml's deployments as declared there (one source)."""
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    from internflow.deployments.serve import SERVED_POOL, runner_deployments

    declared = {name: d for name, d in _deployments().items() if d["work_pool"]["name"] == SERVED_POOL}
    served = {d.name: d for d in runner_deployments()}
    assert set(served) == set(declared) >= {"campaign", "overnight", "iteration", "publish", "notify-crashed"}
    for name, spec in declared.items():
        deployment = served[name]
        assert deployment.entrypoint and deployment.entrypoint.endswith(spec["entrypoint"]), name
        assert deployment.description == spec["description"] and deployment.parameters == (spec.get("parameters") or {})
        assert len(deployment.triggers) == len(spec.get("triggers", [])), name
    (nightly,) = served["overnight"].schedules
    assert (nightly.schedule.cron, nightly.schedule.timezone) == ("0 22 * * *", "UTC")  # type: ignore[union-attr]
    assert served["overnight"].concurrency_limit == 1 and served["overnight"].concurrency_options is not None
    assert served["overnight"].concurrency_options.collision_strategy is ConcurrencyLimitStrategy.CANCEL_NEW
    assert served["overnight"].parameters["config"]["time_budget_minutes"] == 480
