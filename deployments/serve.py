"""Serve the campaign, iteration and automation flows as deployments from this process, no work pool needed:

    python -m deployments.serve      # then trigger from the Prefect UI or `prefect deployment run`

`prefect.yaml` declares the same deployments for a worker-based setup; their concurrency limits
and automations (triggers) are read from it, so both stay one definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from flows.campaign import campaign
from flows.iteration import research_iteration
from flows.publish import notify_crashed, publish_best

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"


def _declared() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"]}


def main() -> None:
    declared = _declared()

    def options(name: str) -> dict[str, Any]:
        spec = declared[name]
        triggers = [DeploymentEventTrigger.model_validate(t) for t in spec.get("triggers", [])]
        found: dict[str, Any] = {"triggers": triggers}
        if "concurrency_limit" in spec:
            found["concurrency_limit"] = ConcurrencyLimitConfig.model_validate(spec["concurrency_limit"])
        if spec.get("parameters"):
            found["parameters"] = spec["parameters"]
        return found

    serve(
        campaign.to_deployment(name="campaign", **options("campaign")),
        campaign.to_deployment(name="overnight", cron="0 22 * * *", **options("overnight")),
        research_iteration.to_deployment(name="iteration"),
        publish_best.to_deployment(name="publish", **options("publish")),
        notify_crashed.to_deployment(name="notify-crashed", **options("notify-crashed")),
    )


if __name__ == "__main__":
    main()
