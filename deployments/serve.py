"""Serve the campaign, iteration and automation flows as deployments from this process, no work pool needed:

    python -m internflow.deployments.serve      # then trigger from the Prefect UI or `prefect deployment run`

`prefect.yaml` is the one definition: every deployment it declares on the `internflow-process`
pool is served as declared there — name, flow (entrypoint), description, parameters, schedules
(the nightly `overnight`), concurrency limit and automations (triggers) — so `prefect deploy`
with a worker and this command run the same deployments.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.deployments.runner import RunnerDeployment
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.schedules import Schedule

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"
SERVED_POOL = "internflow-process"  # the others (docker, kubernetes) need their workers

__all__ = ["PREFECT_YAML", "SERVED_POOL", "declared", "main", "runner_deployments"]


def declared() -> list[dict[str, Any]]:
    """prefect.yaml's deployments, as written."""
    return list(yaml.safe_load(PREFECT_YAML.read_text())["deployments"])


def _flow(entrypoint: str) -> Flow[..., Any]:
    """`flows/campaign.py:campaign` → the flow object `flows.campaign.campaign` (imported, not loaded
    from the file again, so it is the one flow every other import sees)."""
    path, _, name = entrypoint.partition(":")
    flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)
    if not isinstance(flow, Flow):
        raise TypeError(f"{PREFECT_YAML}: entrypoint {entrypoint} is not a flow")
    return flow


def runner_deployments() -> list[RunnerDeployment]:
    """The deployments this process serves: prefect.yaml's on the process pool, as declared."""
    built = []
    for spec in declared():
        if spec["work_pool"]["name"] != SERVED_POOL:
            continue
        limit = spec.get("concurrency_limit")
        built.append(
            _flow(spec["entrypoint"]).to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                parameters=spec.get("parameters") or None,
                schedules=[Schedule(**schedule) for schedule in spec.get("schedules", [])] or None,
                concurrency_limit=ConcurrencyLimitConfig.model_validate(limit) if limit else None,
                triggers=[DeploymentEventTrigger.model_validate(t) for t in spec.get("triggers", [])],
            )
        )
    return built


def main() -> None:
    serve(*runner_deployments())


if __name__ == "__main__":
    main()
