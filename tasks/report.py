"""Reporting stage: the campaign leaderboard artifact, the campaign-progress plot and `report.json`
in the workspace.  What they show is rendered by `internflow.reporting` and `internflow.plots`.

Called after every iteration, so a crash mid-campaign still leaves an up-to-date report.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from internflow.disk import is_disk_full
from internflow.markdown import cell, image
from internflow.plots import plot_campaign_progress, progress_series
from internflow.reporting import leaderboard_description, leaderboard_table
from internflow.schemas import CampaignConfig, CampaignFailure, CampaignReport

__all__ = ["publish_failure", "publish_report"]


@task(name="report", cache_policy=NO_CACHE)
def publish_report(report: CampaignReport, path: Path) -> Path:
    """Write the campaign report to `path` (report.json, atomically) and publish the `leaderboard`
    artifact; returns `path`. A full disk keeps the last version instead of failing the campaign."""
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_text(report.model_dump_json(indent=2))
        tmp.replace(path)  # atomic: a reader never sees half a report
    except OSError as error:  # a full disk must not end the campaign: the last report stays
        if not is_disk_full(error):
            raise
        tmp.unlink(missing_ok=True)
        get_run_logger().error("%s keeps its last version: the disk is full (%s)", path, error)
    create_table_artifact(
        key="leaderboard", table=leaderboard_table(report), description=leaderboard_description(report)
    )
    try:
        _publish_progress(report, path.parent / "reports" / "campaign-progress.png")
    except OSError as error:
        if not is_disk_full(error):
            raise
        get_run_logger().error("the campaign-progress plot is not updated: the disk is full (%s)", error)
    return path


def publish_failure(
    error: BaseException,
    path: Path,
    config: CampaignConfig,
    elapsed_s: float,
    report: CampaignReport | None = None,
    flow_run_id: str | None = None,
) -> str:
    """report.json for a campaign that failed after preflight: its report so far (baseline and
    iterations kept) with the failure as its stop reason, or, before a baseline, the config and
    the failure.  Returns the failure as one line."""
    failure = f"{type(error).__name__}: {' '.join(str(error).split())}"
    reason = f"failed: {failure}"
    final: CampaignReport | CampaignFailure
    if report is not None:
        final = report.model_copy(update={"stop_reason": reason, "failure": failure})
    else:
        final = CampaignFailure(
            config=config, failure=failure, stop_reason=reason, elapsed_s=elapsed_s, flow_run_id=flow_run_id
        )
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(final.model_dump_json(indent=2))
    tmp.replace(path)
    return failure


def _publish_progress(report: CampaignReport, png: Path) -> None:
    """Score per iteration over the campaign's time, baseline and best marked."""
    plot_campaign_progress(
        progress_series(report),
        report.baseline.accuracy,
        report.best_iteration,
        f"{report.config.benchmark}: {report.stop_reason}",
        png,
    )
    create_markdown_artifact(
        key="campaign-progress",
        markdown=(
            f"{image(png.read_bytes(), 'accuracy per iteration over the campaign time')}\n\n"
            f"Accuracy (%) of each iteration against minutes since the baseline was scored; dashed line: the "
            f"baseline, star: the best iteration, ✕: a failed one. File: {cell(str(png))}"
        ),
        description=f"Score per iteration over time (best {report.best_score:.1%}, baseline "
        f"{report.baseline.accuracy:.1%}); updated after every iteration",
    )
