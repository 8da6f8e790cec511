"""Everything a person reads about a campaign, rendered from its typed `CampaignReport`: the
leaderboard (typed rows, as text for the CLI and the `leaderboard` artifact, and as linked markdown
for the report), the two-minute campaign report and the best model's card.  Pure rendering; free
text goes through `internflow.markdown` (`cell`, `code`), the one escaper.  The Prefect tasks that
write files and publish artifacts live in `tasks/report.py` and `tasks/publish.py`; the figures in
`internflow/plots.py`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from internflow.markdown import cell, code, table
from internflow.narration import short_path
from internflow.schemas import CampaignReport, EvalResult, IterationParams, IterationResult, Paper

__all__ = [
    "CLI_COLUMNS",
    "LEADERBOARD_COLUMNS",
    "TRACKIO_DASHBOARD_URL",
    "LeaderboardRow",
    "campaign_report_markdown",
    "evaluation_table",
    "leaderboard",
    "leaderboard_description",
    "leaderboard_markdown",
    "leaderboard_rows",
    "leaderboard_table",
    "lineage",
    "model_card_markdown",
    "trackio_run_url",
]

# `internflow dashboard` serves trackio here (its default port).
TRACKIO_DASHBOARD_URL = "http://127.0.0.1:7860"

# The leaderboard's columns as text (`LeaderboardRow.cells`): the artifact shows them all, the CLI
# (`internflow run` and `internflow leaderboard`) CLI_COLUMNS.  The short columns come first: the
# UI does not wrap table cells.
LEADERBOARD_COLUMNS = (
    "iter", "verdict", "acc %", "95% CI", "gain", "test %", "model (or error)", "n", "method", "datasets", "lr",
    "steps", "init", "wall s",
)  # fmt: skip
CLI_COLUMNS = ("iter", "verdict", "acc %", "95% CI", "gain", "test %", "datasets", "lr", "steps", "init", "wall s")


def trackio_run_url(project: str, run: str) -> str:
    return f"{TRACKIO_DASHBOARD_URL}/?project={project}&runs={run}"


# ---------------------------------------------------------------- leaderboard ----------------


class LeaderboardRow(BaseModel):
    """One leaderboard row with its numbers typed: the baseline (`iteration` None), a finished
    iteration, or a failed one (`error` set, no scores).  Fractions stay fractions (0.74, not 74);
    `cells` formats them, the one place that does."""

    model_config = ConfigDict(frozen=True)

    iteration: int | None = Field(description="The iteration's index; None: the baseline.")
    verdict: str | None = Field(description="The diagnosis' verdict, 'failed' when it raised; None: the baseline.")
    evaluation: EvalResult | None = Field(description="Its score on the split iterations are chosen on; None: failed.")
    gain: float | None = Field(description="Accuracy minus the baseline's (0.475: +47.5 points); None: failed.")
    test: EvalResult | None = Field(
        None, description="Its score on the test split, scored once after the search: the baseline and the best only."
    )
    model: str = Field(
        description="What the model column shows: the base model as configured, the model folder relative to the "
        "workspace, or the error's first 200 characters."
    )
    model_path: str | None = Field(None, description="The model folder (the resolved base model for the baseline).")
    error: str | None = Field(None, description="Why the iteration failed.")
    params: IterationParams | None = Field(None, description="What was trained; None: the baseline.")
    trackio_run: str | None = Field(None, description="Its training curves' trackio run.")
    trackio_url: str | None = Field(None, description="That run on the trackio dashboard.")
    wall_s: float | None = Field(description="Seconds it took (the baseline: its evaluation); None: failed.")

    def cells(self) -> dict[str, str]:
        """The row as text under LEADERBOARD_COLUMNS, as the CLI prints it: accuracy and its 95 % CI
        in percent, gain in points, "-" where a value does not apply (never a blank cell)."""
        e, t, p = self.evaluation, self.test, self.params
        return {
            "iter": "baseline" if self.iteration is None else str(self.iteration),
            "verdict": self.verdict or "-",
            "acc %": "-" if e is None else _points(e.accuracy),
            "95% CI": "-" if e is None else _interval(e),
            "gain": "-" if self.gain is None else f"{100 * self.gain:+.1f}",
            "test %": "-" if t is None else f"{_points(t.accuracy)} ({_interval(t)}, n={t.n})",
            "model (or error)": self.model,
            # n: fewer than the baseline's for a screen; its gain is on those items
            "n": "-" if e is None else str(e.n),
            "method": "-" if p is None else p.method,
            "datasets": "-" if p is None else "+".join(p.datasets),
            "lr": "-" if p is None else f"{p.learning_rate:.0e}",
            "steps": "-" if p is None else str(p.max_steps),
            "init": "-" if p is None else p.init_from + ("+LoRA" if p.use_lora else ""),
            "wall s": "-" if self.wall_s is None else str(round(self.wall_s)),
        }


def _points(value: float) -> str:
    return f"{100 * value:.1f}"


def _interval(e: EvalResult) -> str:
    return f"{_points(e.ci_low)}–{_points(e.ci_high)}"


def leaderboard(report: CampaignReport) -> list[LeaderboardRow]:
    """One row per iteration: the baseline, then the iterations best first, then the failed ones
    in the order they ran."""
    base, workspace = report.baseline, report.config.workspace
    rows = [
        LeaderboardRow(
            iteration=None, verdict=None, evaluation=base, gain=0.0, test=report.test_baseline,
            model=report.config.model, model_path=report.base_model, wall_s=base.runtime_s,
        )
    ]  # fmt: skip
    for r in sorted(report.iterations, key=lambda r: -r.evaluation.accuracy):
        rows.append(
            LeaderboardRow(
                iteration=r.index, verdict=r.diagnosis.verdict, evaluation=r.evaluation,
                gain=r.diagnosis.gain_vs_baseline, test=report.test_best if r.index == report.best_iteration else None,
                model=short_path(r.train.model_path, workspace), model_path=r.train.model_path, params=r.params,
                trackio_run=r.train.trackio_run, wall_s=r.wall_s,
                trackio_url=trackio_run_url(r.train.trackio_project, r.train.trackio_run),
            )
        )  # fmt: skip
    for f in report.failures:
        rows.append(
            LeaderboardRow(
                iteration=f.index, verdict="failed", evaluation=None, gain=None, model=f.error[:200], error=f.error,
                params=f.params, wall_s=None,
            )
        )  # fmt: skip
    return rows


def leaderboard_rows(report: CampaignReport) -> list[dict[str, str]]:
    """The leaderboard as text, one dict per row (`LeaderboardRow.cells`): what the CLI prints and
    the `leaderboard` artifact shows (escaped there by `leaderboard_table`)."""
    return [row.cells() for row in leaderboard(report)]


def leaderboard_table(report: CampaignReport) -> list[dict[str, str]]:
    """The `leaderboard` table artifact's rows: `leaderboard_rows` with every cell escaped, since
    Prefect renders each string cell as markdown (a bare "-" would be a list bullet)."""
    return [{column: cell(value) for column, value in row.items()} for row in leaderboard_rows(report)]


def leaderboard_description(report: CampaignReport) -> str:
    """The `leaderboard` artifact's description: the best against the baseline, units, stop reason."""
    return (
        (
            f"Best: iteration {report.best_iteration} at {report.best_score:.1%}"
            if report.best_iteration is not None
            else "No iteration beat the baseline"
        )
        + f" (baseline {report.baseline.accuracy:.1%}) on the {report.selected_on} split; accuracy and 95 % CI "
        f"in %, gain in points over the baseline; test % scored once after the search"
        + (" (optimistic: chosen on test)" if report.optimistic else "")
        + f". Stop reason: {report.stop_reason}"
    )


# ---------------------------------------------------------------- report and model card ----------------


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
    """The leaderboard's rows as a markdown table for the campaign report, each linked to its trackio
    run, model folder and eval samples (a failed iteration: its error)."""
    na = cell("-")  # a bare "-" would render as a list bullet
    rows = []
    for row in leaderboard(report):
        e, p = row.evaluation, row.params
        rows.append(
            [
                "baseline" if row.iteration is None else str(row.iteration),
                row.verdict or na,
                na if e is None else _pct(e.accuracy),
                na if e is None else f"{_pct(e.ci_low)} – {_pct(e.ci_high)}",
                na if row.iteration is None or row.gain is None else f"{100 * row.gain:+.1f} pt",
                na if p is None else p.method,
                na if p is None else cell("+".join(p.datasets)),
                na if row.trackio_run is None else f"[{cell(row.trackio_run)}]({row.trackio_url})",
                na if row.model_path is None else code(row.model_path),
                cell(row.error, 100) if e is None else code(e.samples_path),
            ]
        )
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
            f"{best.params.method} on {', '.join(best.params.datasets)}. Model: {code(report.best_model_path)}."
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
        f"# Campaign report: {report.config.benchmark} on {code(report.base_model)}\n\n"
        f"{outcome}\n\n{evaluation_table(report, chosen)}\n\n"
        f"Stopped because: {report.stop_reason}. {len(report.iterations)} iterations finished, "
        f"{len(report.failures)} failed, in {report.elapsed_s / 60:.1f} min "
        f"(budget {report.config.time_budget_minutes:g} min, {report.config.max_iterations} iterations).\n\n"
        f"## Iterations, in order\n\n" + ("\n".join(log) or "(none ran)") + "\n\n"
        f"## Leaderboard\n\n{leaderboard_markdown(report)}\n\n"
        f"## Papers read\n\n{papers}\n\n"
        f"Flow run: {code(report.flow_run_id)}. "
        f"Trackio dashboard: {code(f'internflow dashboard -w {report.config.workspace}')}.\n"
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
        f"| {cell(s.name)} | {s.rows_used} | {code(s.sha256)} |" for r in chain for s in r.data.sources
    )  # fmt: skip
    params = "\n".join(f"| {code(k)} | {code(v)} |" for k, v in p.model_dump(mode="json").items())
    steps = "\n".join(
        f"{i}. iteration {r.index}: {r.params.method} from {r.params.init_from}, "
        f"{'+'.join(r.params.datasets)} → {_pct(r.evaluation.accuracy)} (flow run {code(r.flow_run_id)}, "
        f"trackio run {code(r.train.trackio_run)})"
        for i, r in enumerate(chain, 1)
    )
    papers = "\n".join(f"- [{cell(p.title)}]({p.url}) (arXiv {p.arxiv_id})" for p in _papers(report)) or "- (none)"
    body = (
        f"\n# {Path(report.best_model_path).name}\n\n"
        f"Post-trained by internflow from {code(report.base_model)} for the "
        f"{code(report.config.benchmark)} benchmark (iteration {best.index} of a campaign).\n\n"
        f"## Evaluation\n\n{evaluation_table(report, e)}\n\n"
        f"## Training data\n\n| dataset | rows used | sha256 |\n|---|---|---|\n{datasets}\n\n"
        f"## Method and parameters\n\n{p.method.upper()} with TRL"
        f"{' (LoRA, merged)' if p.use_lora else ''}; {best.train.steps} steps, final loss {best.train.final_loss}.\n\n"
        f"| parameter | value |\n|---|---|\n{params}\n\n"
        f"## Lineage\n\nBase model {code(report.base_model)}, then:\n\n{steps}\n\n"
        f"## Papers that informed it\n\n{papers}\n"
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))
