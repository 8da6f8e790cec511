"""Reporting stage: the campaign leaderboard artifact, the campaign-progress plot and `report.json`
in the workspace.

Called after every iteration, so a crash mid-campaign still leaves an up-to-date report.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from internflow.disk import is_disk_full
from internflow.markdown import cell, image
from internflow.model_card import plot_campaign_progress, progress_series
from internflow.narration import short_path
from internflow.schemas import CampaignConfig, CampaignFailure, CampaignReport, EvalResult, IterationParams

__all__ = ["CLI_COLUMNS", "leaderboard_rows", "publish_failure", "publish_report"]

# What `internflow run` and `internflow leaderboard` print; the artifact shows every column.
CLI_COLUMNS = ("iter", "verdict", "acc %", "95% CI", "gain", "test %", "datasets", "lr", "steps", "init", "wall s")


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _scores(e: EvalResult, gain: float) -> dict[str, str]:
    return {"acc %": _pct(e.accuracy), "95% CI": f"{_pct(e.ci_low)}–{_pct(e.ci_high)}", "gain": f"{100 * gain:+.1f}"}


def _params(p: IterationParams) -> dict[str, str]:
    return {
        "method": p.method,
        "datasets": "+".join(p.datasets),
        "lr": f"{p.learning_rate:.0e}",
        "steps": str(p.max_steps),
        "init": p.init_from + ("+LoRA" if p.use_lora else ""),
    }


def _test(result: EvalResult | None) -> str:
    if result is None:
        return "-"
    return f"{_pct(result.accuracy)} ({_pct(result.ci_low)}–{_pct(result.ci_high)}, n={result.n})"


def leaderboard_rows(report: CampaignReport) -> list[dict[str, str]]:
    """The leaderboard as text, one row per iteration: the baseline, then the iterations best first,
    then the failed ones.  Accuracy and its 95 % CI in percent on the split iterations were chosen
    on (dev), gain over the baseline in points, the test split's score (baseline and best only:
    scored once, after the search), the model (folder relative to the workspace) next to them so
    that it is in sight, then the parameters; "-" where a value does not apply."""
    dash = dict.fromkeys(("method", "datasets", "lr", "steps", "init"), "-")
    base = report.baseline
    rows = [
        {"iter": "baseline", "verdict": "-", **_scores(base, 0.0), "test %": _test(report.test_baseline)}
        | {"model (or error)": report.config.model, "n": str(base.n), **dash, "wall s": str(round(base.runtime_s))}
    ]
    for r in sorted(report.iterations, key=lambda r: -r.evaluation.accuracy):
        rows.append(
            {"iter": str(r.index), "verdict": r.diagnosis.verdict}
            | _scores(r.evaluation, r.diagnosis.gain_vs_baseline)
            | {"test %": _test(report.test_best) if r.index == report.best_iteration else "-"}
            | {"model (or error)": short_path(r.train.model_path, report.config.workspace)}
            # n: fewer than the baseline's for a screen; its gain is on those items
            | {"n": str(r.evaluation.n), **_params(r.params), "wall s": str(round(r.wall_s))}
        )
    for f in report.failures:
        rows.append(
            {"iter": str(f.index), "verdict": "failed", "acc %": "-", "95% CI": "-", "gain": "-", "test %": "-"}
            | {"model (or error)": f.error[:200], "n": "-", **_params(f.params), "wall s": "-"}
        )
    return rows


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
        key="leaderboard",
        # Prefect renders each string cell as markdown: a bare "-" would be a list bullet.
        table=[{column: cell(value) for column, value in row.items()} for row in leaderboard_rows(report)],
        description=(
            (
                f"Best: iteration {report.best_iteration} at {report.best_score:.1%}"
                if report.best_iteration is not None
                else "No iteration beat the baseline"
            )
            + f" (baseline {report.baseline.accuracy:.1%}) on the {report.selected_on} split; accuracy and 95 % CI "
            f"in %, gain in points over the baseline; test % scored once after the search"
            + (" (optimistic: chosen on test)" if report.optimistic else "")
            + f". Stop reason: {report.stop_reason}"
        ),
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
