"""The leaderboard (typed rows; as text for the CLI and the artifact, as markdown for the campaign
report) and the campaign-progress plot."""

from __future__ import annotations

from pathlib import Path

from internflow.markdown import cell
from internflow.plots import ProgressPoint, plot_campaign_progress, progress_series
from internflow.reporting import CLI_COLUMNS, LEADERBOARD_COLUMNS, leaderboard, leaderboard_markdown, leaderboard_rows
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


def test_rows_keep_their_numbers_typed_and_one_function_formats_them(tmp_path: Path) -> None:
    baseline, best, _, failed = leaderboard(sample_report(str(tmp_path)))
    assert best.evaluation is not None and best.evaluation.accuracy == 0.74 and round(best.gain or 0, 3) == 0.475
    assert baseline.iteration is None and baseline.test is not None and baseline.test.accuracy == 0.25
    assert failed.evaluation is None and failed.gain is None and failed.error == "TrainingFailed: out of memory"
    assert tuple(best.cells()) == LEADERBOARD_COLUMNS and best.cells()["test %"] == "71.0 (64.3–76.9, n=200)"


def test_report_leaderboard_lists_the_same_rows_in_the_same_order(tmp_path: Path) -> None:
    report = sample_report(str(tmp_path))
    rendered = rendered_cells(leaderboard_markdown(report))
    assert [row[0] for row in rendered] == [row["iter"] for row in leaderboard_rows(report)]
    assert rendered[1][:5] == ["1", "improved", "74.0 %", "67.5 % – 79.6 %", "+47.5 pt"]
    assert rendered[3][-1] == "TrainingFailed: out of memory"


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
