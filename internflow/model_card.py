"""What a person reads after a campaign: the learning-curve plot, the two-minute campaign report
and the best model's card.  Pure rendering from the typed report; the Prefect tasks that write
them and publish artifacts live in `tasks/publish.py`.
"""

from __future__ import annotations

from pathlib import Path

from internflow.schemas import CampaignReport, IterationResult, Paper, TrainResult

__all__ = [
    "TRACKIO_DASHBOARD_URL",
    "campaign_report_markdown",
    "leaderboard_markdown",
    "lineage",
    "model_card_markdown",
    "plot_learning_curve",
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
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path


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
    base = report.baseline
    rows = [
        "| iteration | verdict | accuracy | 95 % CI | gain | method | datasets | trackio | model | samples |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| baseline | - | {_pct(base.accuracy)} | {_pct(base.ci_low)} – {_pct(base.ci_high)} | - | - | - | - | "
        f"`{report.base_model}` | `{base.samples_path}` |",
    ]
    for r in sorted(report.iterations, key=lambda r: -r.evaluation.accuracy):
        e, t = r.evaluation, r.train
        rows.append(
            f"| {r.index} | {r.diagnosis.verdict} | {_pct(e.accuracy)} | {_pct(e.ci_low)} – {_pct(e.ci_high)} | "
            f"{100 * r.diagnosis.gain_vs_baseline:+.1f} pt | {r.params.method} | {'+'.join(r.params.datasets)} | "
            f"[{t.trackio_run}]({trackio_run_url(t.trackio_project, t.trackio_run)}) | `{t.model_path}` | "
            f"`{e.samples_path}` |"
        )
    for f in report.failures:
        error = f.error.replace("|", "/").replace("\n", " ")[:100]
        rows.append(f"| {f.index} | failed | - | - | - | {f.params.method} | {'+'.join(f.params.datasets)} | - | - | "
                    f"{error} |")  # fmt: skip
    return "\n".join(rows)


def campaign_report_markdown(report: CampaignReport) -> str:
    """The campaign in a two-minute read: outcome first, then what was tried (negative results kept)."""
    base = report.baseline
    if report.best_iteration is None:
        outcome = f"No iteration beat the base model ({_pct(base.accuracy)}); the base model stays the best."
    else:
        best = next(r for r in report.iterations if r.index == report.best_iteration)
        outcome = (
            f"Best: iteration {best.index} at **{_pct(best.evaluation.accuracy)}** "
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
            f"Why: {r.rationale or '-'} {finding}".rstrip()
        )
    for f in sorted(report.failures, key=lambda f: f.index):
        log.append(f"{f.index}. **failed** — {f.params.method}: {f.error[:200]}")
    papers = "\n".join(f"- [{p.title}]({p.url}) ({p.arxiv_id})" for p in _papers(report)) or "- (none found)"
    return (
        f"# Campaign report: {report.config.benchmark} on `{report.base_model}`\n\n"
        f"{outcome}\n\n"
        f"Stopped because: {report.stop_reason}. {len(report.iterations)} iterations finished, "
        f"{len(report.failures)} failed, in {report.elapsed_s / 60:.1f} min "
        f"(budget {report.config.time_budget_minutes:g} min, {report.config.max_iterations} iterations).\n\n"
        f"## Iterations, in order\n\n" + ("\n".join(log) or "(none ran)") + "\n\n"
        f"## Leaderboard\n\n{leaderboard_markdown(report)}\n\n"
        f"## Papers read\n\n{papers}\n\n"
        f"Flow run: `{report.flow_run_id}`. Trackio dashboard: `internflow dashboard -w {report.config.workspace}`.\n"
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
        f"| {s.name} | {s.rows_used} | `{s.sha256}` |" for r in chain for s in r.data.sources
    )  # fmt: skip
    params = "\n".join(f"| `{k}` | `{v}` |" for k, v in p.model_dump(mode="json").items())
    steps = "\n".join(
        f"{i}. iteration {r.index}: {r.params.method} from {r.params.init_from}, "
        f"{'+'.join(r.params.datasets)} → {_pct(r.evaluation.accuracy)} (flow run `{r.flow_run_id}`, "
        f"trackio run `{r.train.trackio_run}`)"
        for i, r in enumerate(chain, 1)
    )
    papers = "\n".join(f"- [{p.title}]({p.url}) (arXiv {p.arxiv_id})" for p in _papers(report)) or "- (none)"
    body = (
        f"\n# {Path(report.best_model_path).name}\n\n"
        f"Post-trained by internflow from `{report.base_model}` for the "
        f"`{report.config.benchmark}` benchmark (iteration {best.index} of a campaign).\n\n"
        f"## Evaluation\n\n| model | accuracy | 95 % CI (Wilson) | n |\n|---|---|---|---|\n"
        f"| this model | {_pct(e.accuracy)} | {_pct(e.ci_low)} – {_pct(e.ci_high)} | {e.n} |\n"
        f"| base model | {_pct(report.baseline.accuracy)} | {_pct(report.baseline.ci_low)} – "
        f"{_pct(report.baseline.ci_high)} | {report.baseline.n} |\n\n"
        f"## Training data\n\n| dataset | rows used | sha256 |\n|---|---|---|\n{datasets}\n\n"
        f"## Method and parameters\n\n{p.method.upper()} with TRL"
        f"{' (LoRA, merged)' if p.use_lora else ''}; {best.train.steps} steps, final loss {best.train.final_loss}.\n\n"
        f"| parameter | value |\n|---|---|\n{params}\n\n"
        f"## Lineage\n\nBase model `{report.base_model}`, then:\n\n{steps}\n\n"
        f"## Papers that informed it\n\n{papers}\n"
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))
