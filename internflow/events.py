"""Prefect events a campaign emits, with the campaign as their resource, for automations to act on.

    internflow.iteration.completed     an iteration was recorded (completed or failed)
    internflow.best.improved           the campaign recorded a new best (its publication stood)
    internflow.contamination.blocked   the decontamination gate kept a dataset or a model back
    internflow.campaign.stopped        the campaign stopped, with its stated reason

The resource is `internflow.campaign.<campaign flow run id>`, labelled with the workspace and the
benchmark; the iteration's flow run is a related resource.  `prefect.yaml` ships automations on
them (a deployment trigger runs `publish` when the best improves past a threshold).  An event is
never load-bearing: a server that cannot take it only costs the event.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "BEST_IMPROVED",
    "CAMPAIGN_STOPPED",
    "CONTAMINATION_BLOCKED",
    "ITERATION_COMPLETED",
    "campaign_resource",
    "emit",
]

ITERATION_COMPLETED = "internflow.iteration.completed"
BEST_IMPROVED = "internflow.best.improved"
CONTAMINATION_BLOCKED = "internflow.contamination.blocked"
CAMPAIGN_STOPPED = "internflow.campaign.stopped"

logger = logging.getLogger(__name__)


def campaign_resource(campaign_id: str | None, workspace: str, benchmark: str) -> dict[str, str]:
    """The campaign as a Prefect event resource (a campaign run outside Prefect is `local`)."""
    return {
        "prefect.resource.id": f"internflow.campaign.{campaign_id or 'local'}",
        "prefect.resource.name": f"campaign on {benchmark}",
        "internflow.workspace": workspace,
        "internflow.benchmark": benchmark,
    }


def emit(
    event: str,
    campaign_id: str | None,
    workspace: str,
    benchmark: str,
    payload: dict[str, Any],
    flow_run_id: str | None = None,
) -> None:
    """Emit `event` about the campaign; `flow_run_id` names the iteration run it concerns."""
    from prefect.events import emit_event

    related = []
    if flow_run_id:
        related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "iteration"})
    try:
        emit_event(
            event, resource=campaign_resource(campaign_id, workspace, benchmark), payload=payload, related=related
        )
    except Exception as error:  # events are for automations; the campaign goes on without one
        logger.warning("event %s not emitted: %s", event, error)
