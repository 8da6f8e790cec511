"""The campaign's work pool: where its iterations run when `CampaignConfig.work_pool` names one.

Each iteration is a flow run of the `research-iteration` deployment on that pool (a worker per
GPU: a process pool on one machine, docker or kubernetes elsewhere), started with
`run_deployment`.  The deployment carries what the pool needs (image, volumes, GPU requests):
`prefect.yaml` declares one per pool type.
"""

from __future__ import annotations

__all__ = ["ITERATION_FLOW", "WorkPoolError", "iteration_deployment"]

ITERATION_FLOW = "research-iteration"


class WorkPoolError(ValueError):
    pass


def iteration_deployment(pool: str) -> str:
    """The id of a `research-iteration` deployment on work pool `pool` (the one named `iteration*`
    first); WorkPoolError, naming the command that makes one, when there is none."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, WorkPoolFilter, WorkPoolFilterName

    try:
        with get_client(sync_client=True) as client:
            found = client.read_deployments(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[ITERATION_FLOW])),
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
            )
    except Exception as error:
        raise WorkPoolError(
            f"work_pool: the Prefect API could not be asked for {pool!r}'s deployments ({type(error).__name__}: "
            f"{error}); set PREFECT_API_URL to the server the pool's workers poll"
        ) from None
    if not found:
        raise WorkPoolError(
            f"work_pool: no {ITERATION_FLOW} deployment on work pool {pool!r} at this Prefect API; create one "
            "from prefect.yaml (`prefect deploy --name iteration`, or the docker/kubernetes ones), start a worker "
            "per GPU, and set PREFECT_API_URL to that server"
        )
    found.sort(key=lambda d: (not d.name.startswith("iteration"), d.name))
    return str(found[0].id)
