"""Serve the campaign and iteration flows as deployments from this process, no work pool needed:

    python -m deployments.serve      # then trigger from the Prefect UI or `prefect deployment run`

`prefect.yaml` declares the same deployments for a worker-based setup.
"""

from __future__ import annotations

from prefect import serve

from flows.campaign import campaign
from flows.iteration import research_iteration


def main() -> None:
    serve(
        campaign.to_deployment(name="campaign"),
        campaign.to_deployment(
            name="overnight",
            cron="0 22 * * *",
            parameters={
                "config": {"time_budget_minutes": 480, "max_iterations": 60, "workspace": "internflow-overnight"}
            },
        ),
        research_iteration.to_deployment(name="iteration"),
    )


if __name__ == "__main__":
    main()
