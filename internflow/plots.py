"""The figures a person reads: each iteration's learning curve and the campaign's progress, as PNGs.
matplotlib is imported inside each function (Agg backend: workers have no display); the Prefect
tasks that publish them as artifacts live in `tasks/publish.py` and `tasks/report.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from internflow.schemas import CampaignReport, FailedIteration, IterationResult, TrainResult

__all__ = ["ProgressPoint", "plot_campaign_progress", "plot_learning_curve", "progress_series"]


def plot_learning_curve(result: TrainResult, title: str, path: Path) -> Path:
    """Training loss (and GRPO mean reward) per logged step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers; must precede pyplot
    import matplotlib.pyplot as plt

    figure, loss_axis = plt.subplots(figsize=(6, 3.2), dpi=100)
    try:
        steps = [p.step for p in result.losses]
        loss_axis.plot(steps, [p.loss for p in result.losses], color="tab:blue", marker=".", label="train loss")
        loss_axis.set_xlabel("optimizer step")
        loss_axis.set_ylabel("loss", color="tab:blue")
        if result.rewards:
            reward_axis = loss_axis.twinx()
            reward_axis.plot(
                [p.step for p in result.rewards], [p.loss for p in result.rewards], color="tab:orange", label="reward"
            )
            reward_axis.set_ylabel("mean reward", color="tab:orange")
        loss_axis.set_title(title, fontsize=10)
        loss_axis.grid(alpha=0.3)
        _save_png(figure, path)
    finally:
        plt.close(figure)
    return path


class ProgressPoint(NamedTuple):
    minutes: float  # since the campaign's baseline was scored
    accuracy: float | None  # None: the iteration failed
    iteration: int


def progress_series(report: CampaignReport) -> dict[str, list[ProgressPoint]]:
    """Each iteration's score at the time it finished, in order, under the name of what it was scored
    on.  A report without finish times (written before they were kept) places each iteration at its
    cumulative wall time."""
    done: list[IterationResult | FailedIteration] = [*report.iterations, *report.failures]
    points, cumulative_s = [], 0.0
    for r in sorted(done, key=lambda r: r.index):
        accuracy = None
        if isinstance(r, IterationResult):
            cumulative_s, accuracy = cumulative_s + r.wall_s, r.evaluation.accuracy
        at_s = r.finished_s if r.finished_s is not None else cumulative_s
        points.append(ProgressPoint(at_s / 60, accuracy, r.index))
    return {"eval subset": points}


def plot_campaign_progress(
    series: Mapping[str, Sequence[ProgressPoint]], baseline: float, best: int | None, title: str, path: Path
) -> Path:
    """Accuracy (%) per iteration against minutes since the baseline, one line per series (e.g. a dev
    and a test split), the baseline dashed, the best iteration starred, failed iterations as ✕ at 0."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers; must precede pyplot
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.4), dpi=100)
    try:
        axis.axhline(100 * baseline, color="grey", linestyle="--", label=f"baseline {100 * baseline:.1f} %")
        axis.plot([0], [100 * baseline], marker="s", color="grey")
        for name, points in series.items():
            scored = [(p.minutes, 100 * p.accuracy, p.iteration) for p in points if p.accuracy is not None]
            axis.plot([x for x, _, _ in scored], [y for _, y, _ in scored], marker="o", label=name)
            for x, y, index in scored:
                axis.annotate(str(index), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
                if index == best:
                    axis.scatter([x], [y], marker="*", s=250, color="gold", edgecolors="black", zorder=3,
                                 label=f"best: iteration {best}")  # fmt: skip
            failed = [p.minutes for p in points if p.accuracy is None]
            if failed:
                axis.scatter(failed, [0.0] * len(failed), marker="x", color="tab:red", label="failed")
        axis.set_xlabel("minutes since the baseline was scored")
        axis.set_ylabel("accuracy %")
        axis.set_xlim(left=0)
        axis.set_ylim(-4, 104)  # failures sit at 0
        axis.set_title(title, fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="best")
        _save_png(figure, path)
    finally:
        plt.close(figure)
    return path


def _save_png(figure: Any, path: Path) -> None:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
