"""What a person reads after a campaign: the learning-curve plot, the two-minute campaign report
and the best model's card.  Pure rendering from the typed report; the Prefect tasks that write
them and publish artifacts live in `tasks/publish.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from internflow.markdown import cell, code, table
from internflow.schemas import CampaignReport, EvalResult, FailedIteration, IterationResult, Paper, TrainResult

__all__ = [
    "TRACKIO_DASHBOARD_URL",
    "ProgressPoint",
    "campaign_report_markdown",
    "leaderboard_markdown",
    "lineage",
    "model_card_markdown",
    "plot_campaign_progress",
    "plot_learning_curve",
    "progress_series",
    "trackio_run_url",
]

# `internflow dashboard` serves trackio here (its default port).
TRACKIO_DASHBOARD_URL = "http://127.0.0.1:7860"


def trackio_run_url(project: str, run: str) -> str:
    return f"{TRACKIO_DASHBOARD_URL}/?project={project}&runs={run}"


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


def _best_before(history: list[IterationResult], baseline: float) -> IterationResult | None:
    """The model `init_from='best'` meant at that point: the ledger's rule (healthy, beat the baseline)."""
    healthy = [r for r in history if r.diagnosis.verdict != "failed"]
    best = max(healthy, key=lambda r: r.evaluation.accuracy, default=None)
    return best if best is not None and best.evaluation.accuracy > baseline else None


def lineage(report: CampaignReport) -> list[IterationResult]:
    """The chain of iterations the best model descends from, oldest first (empty: no best model)."""
    by_index = sorted(report.iterations, key=lambda r: r.index)
    current = next((r for r in by_index if r.index == report.best_iteration), None)
    chain: list[IterationResult] = []
    while current is not None:
        chain.append(current)
        if current.params.init_from != "best":
            break
        current = _best_before([r for r in by_index if r.index < current.index], report.baseline.accuracy)
    return chain[::-1]


def _papers(report: CampaignReport, limit: int = 8) -> list[Paper]:
    seen: dict[str, Paper] = {}
    for result in report.iterations:
        for paper in result.literature.papers:
            if paper.arxiv_id not in seen or paper.score > seen[paper.arxiv_id].score:
                seen[paper.arxiv_id] = paper
    return sorted(seen.values(), key=lambda p: -p.score)[:limit]


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def leaderboard_markdown(report: CampaignReport) -> str:
    """Baseline and iterations, best first, each linked to its trackio run, model and eval samples."""
    base, na = report.baseline, cell("-")  # a bare "-" would render as a list bullet
    rows = [
        ["baseline", na, _pct(base.accuracy), f"{_pct(base.ci_low)} – {_pct(base.ci_high)}", na, na, na, na,
         code(report.base_model), code(base.samples_path)],
    ]  # fmt: skip
    for r in sorted(report.iterations, key=lambda r: -r.evaluation.accuracy):
        e, t = r.evaluation, r.train
        rows.append(
            [str(r.index), r.diagnosis.verdict, _pct(e.accuracy), f"{_pct(e.ci_low)} – {_pct(e.ci_high)}",
             f"{100 * r.diagnosis.gain_vs_baseline:+.1f} pt", r.params.method, cell("+".join(r.params.datasets)),
             f"[{cell(t.trackio_run)}]({trackio_run_url(t.trackio_project, t.trackio_run)})", code(t.model_path),
             code(e.samples_path)]
        )  # fmt: skip
    for f in report.failures:
        rows.append(
            [str(f.index), "failed", na, na, na, f.params.method, cell("+".join(f.params.datasets)), na, na,
             cell(f.error, 100)]
        )  # fmt: skip
    headers = [
        "iteration",
        "verdict",
        "accuracy",
        "95 % CI",
        "gain",
        "method",
        "datasets",
        "trackio",
        "model",
        "samples",
    ]
    return table(headers, rows)


def campaign_report_markdown(report: CampaignReport) -> str:
    """The campaign in a two-minute read: outcome first, then what was tried (negative results kept)."""
    base = report.baseline
    if report.best_iteration is None:
        outcome = f"No iteration beat the base model ({_pct(base.accuracy)}); the base model stays the best."
    else:
        best = next(r for r in report.iterations if r.index == report.best_iteration)
        outcome = (
            f"Best on {report.selected_on}: iteration {best.index} at **{_pct(best.evaluation.accuracy)}** "
            f"(95 % CI {_pct(best.evaluation.ci_low)} – {_pct(best.evaluation.ci_high)}) vs baseline "
            f"{_pct(base.accuracy)} ({100 * best.diagnosis.gain_vs_baseline:+.1f} pt), "
            f"{best.params.method} on {', '.join(best.params.datasets)}. Model: `{report.best_model_path}`."
        )
    log = []
    for r in sorted(report.iterations, key=lambda r: r.index):
        finding = next((f.message for f in r.diagnosis.findings if f.severity != "info"), "")
        log.append(
            f"{r.index}. **{r.diagnosis.verdict}** — {_pct(r.evaluation.accuracy)}; {r.params.method}, "
            f"lr {r.params.learning_rate:g}, {r.params.max_steps} steps, init {r.params.init_from}. "
            f"Why: {cell(r.rationale or '-')} {cell(finding) if finding else ''}".rstrip()
        )
    for f in sorted(report.failures, key=lambda f: f.index):
        log.append(f"{f.index}. **failed** — {f.params.method}: {cell(f.error, 200)}")
    papers = "\n".join(f"- [{cell(p.title)}]({p.url}) ({p.arxiv_id})" for p in _papers(report)) or "- (none found)"
    chosen = next((r.evaluation for r in report.iterations if r.index == report.best_iteration), None)
    return (
        f"# Campaign report: {report.config.benchmark} on `{report.base_model}`\n\n"
        f"{outcome}\n\n{evaluation_table(report, chosen)}\n\n"
        f"Stopped because: {report.stop_reason}. {len(report.iterations)} iterations finished, "
        f"{len(report.failures)} failed, in {report.elapsed_s / 60:.1f} min "
        f"(budget {report.config.time_budget_minutes:g} min, {report.config.max_iterations} iterations).\n\n"
        f"## Iterations, in order\n\n" + ("\n".join(log) or "(none ran)") + "\n\n"
        f"## Leaderboard\n\n{leaderboard_markdown(report)}\n\n"
        f"## Papers read\n\n{papers}\n\n"
        f"Flow run: `{report.flow_run_id}`. Trackio dashboard: `internflow dashboard -w {report.config.workspace}`.\n"
    )


def _scored(result: EvalResult | None) -> str:
    if result is None:
        return "not scored | - | -"
    return f"{_pct(result.accuracy)} | {_pct(result.ci_low)} – {_pct(result.ci_high)} | {result.n}"


def evaluation_table(report: CampaignReport, chosen: EvalResult | None) -> str:
    """Base model and chosen model on the split iterations were chosen on and on the test split
    (scored once, after the search), side by side, with 95 % Wilson intervals and n."""
    split = report.selected_on
    note = (
        "\n\n*Chosen on the test split itself (no dev data): the test score is optimistic.*"
        if report.optimistic
        else f"\n\nIterations were chosen on the {split} split ({cell(report.dev_source or split)}); the test "
        "split was scored once, after the search, and never seen by the planner."
    )
    return (
        f"| model | {split} accuracy | 95 % CI | n | test accuracy | 95 % CI | n |\n|---|---|---|---|---|---|---|\n"
        f"| base model | {_scored(report.baseline)} | {_scored(report.test_baseline)} |\n"
        + (f"| this model | {_scored(chosen)} | {_scored(report.test_best)} |" if chosen is not None else "")
        + note
    )


def model_card_markdown(report: CampaignReport) -> str:
    """README.md for the best model's folder (the Hub's model-card format: YAML metadata + prose)."""
    from huggingface_hub import ModelCard, ModelCardData

    chain = lineage(report)
    if not chain:
        raise ValueError("model card: the campaign has no trained best model (no iteration beat the baseline)")
    best = chain[-1]
    p, e = best.params, best.evaluation
    local_base = Path(report.base_model).exists()
    data = ModelCardData(
        library_name="transformers",
        base_model=None if local_base else report.base_model,  # the Hub validates this field as a repo id
        tags=["internflow", p.method, report.config.benchmark],
    )
    datasets = "\n".join(
        f"| {cell(s.name)} | {s.rows_used} | `{s.sha256}` |" for r in chain for s in r.data.sources
    )  # fmt: skip
    params = "\n".join(f"| {code(k)} | {code(v)} |" for k, v in p.model_dump(mode="json").items())
    steps = "\n".join(
        f"{i}. iteration {r.index}: {r.params.method} from {r.params.init_from}, "
        f"{'+'.join(r.params.datasets)} → {_pct(r.evaluation.accuracy)} (flow run `{r.flow_run_id}`, "
        f"trackio run `{r.train.trackio_run}`)"
        for i, r in enumerate(chain, 1)
    )
    papers = "\n".join(f"- [{cell(p.title)}]({p.url}) (arXiv {p.arxiv_id})" for p in _papers(report)) or "- (none)"
    body = (
        f"\n# {Path(report.best_model_path).name}\n\n"
        f"Post-trained by internflow from `{report.base_model}` for the "
        f"`{report.config.benchmark}` benchmark (iteration {best.index} of a campaign).\n\n"
        f"## Evaluation\n\n{evaluation_table(report, e)}\n\n"
        f"## Training data\n\n| dataset | rows used | sha256 |\n|---|---|---|\n{datasets}\n\n"
        f"## Method and parameters\n\n{p.method.upper()} with TRL"
        f"{' (LoRA, merged)' if p.use_lora else ''}; {best.train.steps} steps, final loss {best.train.final_loss}.\n\n"
        f"| parameter | value |\n|---|---|\n{params}\n\n"
        f"## Lineage\n\nBase model `{report.base_model}`, then:\n\n{steps}\n\n"
        f"## Papers that informed it\n\n{papers}\n"
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))
