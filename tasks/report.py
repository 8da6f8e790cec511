"""Reporting stage: the campaign leaderboard artifact and `report.json` in the workspace.

Called after every iteration, so a crash mid-campaign still leaves an up-to-date report.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from internflow.disk import is_disk_full
from internflow.schemas import CampaignReport

__all__ = ["leaderboard_rows", "publish_report"]


def leaderboard_rows(report: CampaignReport) -> list[dict[str, object]]:
    base = report.baseline
    rows: list[dict[str, object]] = [
        {
            "iteration": "baseline",
            "verdict": "-",
            "accuracy": round(base.accuracy, 4),
            "ci95": f"[{base.ci_low:.3f}, {base.ci_high:.3f}]",
            "n": base.n,
            "gain": 0.0,
            "method": "-",
            "datasets": "-",
            "lr": "-",
            "steps": "-",
            "init": "-",
            "lora": "-",
            "wall_s": round(base.runtime_s),
            "model": report.base_model,
        }
    ]
    for result in sorted(report.iterations, key=lambda r: -r.evaluation.accuracy):
        p, e = result.params, result.evaluation
        rows.append(
            {
                "iteration": result.index,
                "verdict": result.diagnosis.verdict,
                "accuracy": round(e.accuracy, 4),
                "ci95": f"[{e.ci_low:.3f}, {e.ci_high:.3f}]",
                "n": e.n,  # fewer than the baseline's for a screen; its gain is on those items
                "gain": round(result.diagnosis.gain_vs_baseline, 4),
                "method": p.method,
                "datasets": "+".join(p.datasets),
                "lr": p.learning_rate,
                "steps": p.max_steps,
                "init": p.init_from,
                "lora": p.use_lora,
                "wall_s": round(result.wall_s),
                "model": result.train.model_path,
            }
        )
    for failure in report.failures:
        rows.append(
            {
                "iteration": failure.index,
                "verdict": "failed",
                "accuracy": None,
                "ci95": "-",
                "n": None,
                "gain": None,
                "method": failure.params.method,
                "datasets": "+".join(failure.params.datasets),
                "lr": failure.params.learning_rate,
                "steps": failure.params.max_steps,
                "init": failure.params.init_from,
                "lora": failure.params.use_lora,
                "wall_s": None,
                "model": failure.error[:120],
            }
        )
    return rows


@task(name="report", cache_policy=NO_CACHE)
def publish_report(report: CampaignReport, path: Path) -> Path:
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
        table=leaderboard_rows(report),
        description=(
            f"Best: iteration {report.best_iteration} at {report.best_score:.1%} "
            f"(baseline {report.baseline.accuracy:.1%}). Stop reason: {report.stop_reason}"
            + (
                f". Final model on the whole test split: {report.final_full.accuracy:.1%} (n={report.final_full.n})"
                if report.final_full
                else ""
            )
        ),
    )
    return path
