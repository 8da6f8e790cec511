"""Flows the automations in prefect.yaml run.

- `publish-best` (deployment `publish`): a campaign's best model, with its model card, pushed to
  the Hub.  Its deployment trigger runs it on every `internflow.best.improved` event; it publishes
  only past `min_gain_points` over the baseline (Prefect's triggers match events, they do not
  compare numbers, so the threshold is checked here).
- `notify-crashed` (deployment `notify-crashed`): a crashed campaign run reported through a
  Prefect `Webhook` block (Slack, a pager, any HTTP endpoint), triggered by
  `prefect.flow-run.Crashed` of the `campaign` flow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed

from internflow.best import read_pointer
from internflow.schemas import CampaignReport
from internflow.tasks.publish import push_model

__all__ = ["ALERT_WEBHOOK", "notify_crashed", "publish_best"]

ALERT_WEBHOOK = "internflow-alerts"


@flow(name="publish-best", flow_run_name="publish-best")
def publish_best(
    workspace: str, min_gain_points: float = 0.0, gain_points: float | None = None, hub_repo_id: str | None = None
) -> str:
    """Push the workspace's best pointer's model (best.json) with its model card to `hub_repo_id`
    (default: the campaign's), when it gains at least `min_gain_points` over the baseline.
    `gain_points` is the event's figure, for the run's parameters; the pointer's own is used."""
    root = Path(workspace)
    pointer = read_pointer(root)
    if pointer is None:
        return Completed(message=f"{root}: no best model published yet, nothing to push")  # type: ignore[return-value]
    if pointer.gain_points < min_gain_points:
        message = (
            f"iteration {pointer.index} gains {pointer.gain_points:+.1f} pt, below {min_gain_points:g}: not pushed"
        )
        return Completed(message=message)  # type: ignore[return-value]
    report = CampaignReport.model_validate_json((root / "report.json").read_text())
    if pointer.index not in {r.index for r in report.iterations}:
        raise ValueError(f"{root / 'report.json'}: iteration {pointer.index} (the best pointer's) is not recorded yet")
    repo = hub_repo_id or report.config.hub_repo_id
    if not repo:
        raise ValueError("hub_repo_id: name the Hub repository to publish to (the campaign did not)")
    best = report.model_copy(
        update={
            "config": report.config.model_copy(update={"push_to_hub": True, "hub_repo_id": repo}),
            "best_iteration": pointer.index,
            "best_score": pointer.accuracy,
            "best_model_path": pointer.model_path,
        }
    )
    from internflow.reporting import model_card_markdown

    (Path(pointer.model_path) / "README.md").write_text(model_card_markdown(best))
    url = push_model(best)
    get_run_logger().info("pushed iteration %d (%+.1f pt over the baseline) to %s", pointer.index,
                          pointer.gain_points, url)  # fmt: skip
    return url


@flow(name="notify-crashed", flow_run_name="notify-crashed")
def notify_crashed(flow_run_id: str, flow_run_name: str = "", message: str = "", webhook: str = ALERT_WEBHOOK) -> str:
    """Call the Webhook block `webhook` with what crashed; its configured URL and headers say where."""
    from prefect.blocks.webhook import Webhook
    from prefect.utilities.asyncutils import run_coro_as_sync

    text = f"internflow campaign {flow_run_name or flow_run_id} crashed: {message or 'no message'}"
    load: Any = Webhook.load  # dispatches sync or async; asked for sync here
    hook = load(webhook, _sync=True)
    answer = run_coro_as_sync(hook.call(payload={"text": text, "flow_run_id": flow_run_id}))
    if answer is None or answer.status_code >= 400:
        raise RuntimeError(f"webhook block {webhook}: the endpoint answered {getattr(answer, 'status_code', None)}")
    get_run_logger().info("notified through webhook block %s: %s", webhook, text)
    return text
