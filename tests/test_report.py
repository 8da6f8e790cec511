"""The leaderboard rows (CLI and artifact alike) and the campaign-progress plot."""

from __future__ import annotations

from pathlib import Path

from internflow.markdown import cell
from internflow.model_card import ProgressPoint, plot_campaign_progress, progress_series
from tasks.report import CLI_COLUMNS, leaderboard_rows
from tests.sample_report import sample_report
from tests.test_markdown import rendered_cells

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_leaderboard_shows_percent_and_points_as_the_cli_prints_them(tmp_path: Path) -> None:
    rows = leaderboard_rows(sample_report(str(tmp_path)))
    assert [r["iter"] for r in rows] == ["baseline", "1", "2", "3"]
    baseline, best, _, failed = rows
    assert (baseline["acc %"], baseline["95% CI"], baseline["gain"]) == ("26.5", "20.9–33.0", "+0.0")
    assert (best["acc %"], best["95% CI"], best["gain"], best["lr"]) == ("74.0", "67.5–79.6", "+47.5", "1e-04")
    assert (failed["verdict"], failed["acc %"], failed["model (or error)"]) == (
        "failed",
        "-",
        "TrainingFailed: out of memory",
    )
    assert set(CLI_COLUMNS) <= set(best)


def test_leaderboard_model_path_is_short_enough_to_see(tmp_path: Path) -> None:
    best = leaderboard_rows(sample_report(str(tmp_path)))[1]
    assert best["model (or error)"] == "models/sft-1"  # relative to the workspace, not the absolute path


def test_empty_leaderboard_cells_render_as_a_dash_not_a_list_bullet(tmp_path: Path) -> None:
    baseline = leaderboard_rows(sample_report(str(tmp_path)))[0]
    assert all(baseline.values()), "no blank cell"
    markdown = f"| h |\n|---|\n| {cell(baseline['method'])} |"
    assert rendered_cells(markdown) == [["-"]] and "<li>" not in markdown


def test_progress_series_places_each_iteration_when_it_finished(tmp_path: Path) -> None:
    (points,) = progress_series(sample_report(str(tmp_path))).values()
    assert points == [
        ProgressPoint(200 / 60, 0.74, 1),
        ProgressPoint(390 / 60, 0.67, 2),
        ProgressPoint(400 / 60, None, 3),
    ]


def test_progress_of_an_older_report_without_finish_times_uses_cumulative_wall_time(tmp_path: Path) -> None:
    (points,) = progress_series(sample_report(str(tmp_path), finished=False)).values()
    assert [p.minutes for p in points] == [160 / 60, 320 / 60, 320 / 60]


def test_progress_plot_takes_a_second_series(tmp_path: Path) -> None:
    series = progress_series(sample_report(str(tmp_path)))
    dev_and_test = {"dev": series["eval subset"], "test": [p._replace(accuracy=0.6) for p in series["eval subset"]]}
    png = plot_campaign_progress(dev_and_test, 0.265, 1, "two series", tmp_path / "progress.png")
    assert png.read_bytes().startswith(PNG_MAGIC)
