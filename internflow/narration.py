"""One log line per campaign decision, for the person who reads the run log first: the baseline,
each proposal and why (with the guard's action), each outcome with its gain, the stop reason, and
the result that becomes the campaign's final state message in the Prefect UI.
"""

from __future__ import annotations

import logging
from pathlib import Path

from internflow.schemas import CampaignReport, EvalResult, FailedIteration, IterationParams, IterationResult, Proposal

__all__ = [
    "run_logger",
    "baseline_line",
    "scored_on_test_line",
    "iteration_line",
    "outcome_line",
    "params_summary",
    "proposal_line",
    "result_line",
    "short_path",
]


def _score(result: EvalResult) -> str:
    return f"{result.accuracy:.1%} (n={result.n}, 95% CI {result.ci_low:.1%}–{result.ci_high:.1%})"


def short_path(path: str, workspace: str) -> str:
    """A path inside the workspace relative to it (what fits in a table cell or a log line)."""
    try:
        return str(Path(path).resolve().relative_to(Path(workspace).resolve()))
    except ValueError:
        return path


def params_summary(params: IterationParams) -> str:
    """The parameters a reader compares between iterations, in words."""
    lora = f" LoRA r={params.lora_r}" if params.use_lora else ""
    distill = f" self-distilled ({params.self_distill_k} samples a prompt)" if params.self_distill_k else ""
    steps = params.trained_steps()[0]
    trained = f" ({steps} trained: a screen)" if steps < params.max_steps else ""
    screen = f", screened on {params.eval_fraction:.0%} of the eval items" if params.eval_fraction < 1 else ""
    return (
        f"{params.method}{lora}{distill} from {params.init_from} on {params.max_train_samples} rows of "
        f"{'+'.join(params.datasets)}, lr {params.learning_rate:.0e}, {params.max_steps} steps{trained}{screen}"
    )


def baseline_line(baseline: EvalResult, model: str) -> str:
    return (
        f"baseline: {model} scores {_score(baseline)} on {baseline.benchmark} ({baseline.split} split); "
        f"answers from {baseline.backend}"
    )


def proposal_line(index: int, proposal: Proposal) -> str:
    guard = {
        "accept": "guard accepted it",
        "reject": f"guard rejected the first proposal and re-asked ({proposal.guard_reasons})",
        "force": f"guard forced a change of direction ({proposal.guard_reasons})",
    }[proposal.guard_action]
    return (
        f"iteration {index} proposed by {proposal.source or 'planner'}: {params_summary(proposal.params)}. "
        f"Why: {' '.join(proposal.rationale.split())} — {guard}"
    )


def outcome_line(outcome: IterationResult | FailedIteration, best: IterationResult | None) -> str:
    """What an iteration came to: its score and gain over the baseline, or why it failed."""
    if isinstance(outcome, FailedIteration):
        kinds = ", ".join(f.kind for f in outcome.findings) or "error"
        return f"iteration {outcome.index} failed ({kinds}): {outcome.error[:300]}"
    d = outcome.diagnosis
    vs_best = "; now the best" if best is not None and best.index == outcome.index else ""
    return (
        f"iteration {outcome.index}: {_score(outcome.evaluation)}, {d.verdict}, "
        f"{100 * d.gain_vs_baseline:+.1f} pt vs baseline{vs_best}"
    )


def iteration_line(result: IterationResult, workspace: str) -> str:
    """The iteration flow's last word: its outcome and what training made."""
    t = result.train
    loss = "n/a" if t.final_loss is None else f"{t.final_loss:.4g}"
    return (
        f"{outcome_line(result, None)}; trained {t.steps} steps in {t.runtime_s:.0f} s (final loss {loss}) "
        f"→ {short_path(t.model_path, workspace)}; {result.wall_s:.0f} s in all"
    )


def scored_on_test_line(report: CampaignReport) -> str:
    """The test split, scored once after the search: baseline and best-on-dev side by side."""
    if report.test_baseline is None:
        return "test split: not scored (the evaluation failed; see its task run)"
    base = _score(report.test_baseline)
    if report.best_iteration is None:
        line = f"test split: the base model stays the result, {base}"
    elif report.test_best is None:
        line = f"test split: baseline {base}; the best model's test evaluation failed"
    else:
        line = f"test split: baseline {base} → best (iteration {report.best_iteration}) {_score(report.test_best)}"
    if report.optimistic:
        line += " — chosen on the test split itself: optimistic"
    return line


def result_line(report: CampaignReport) -> str:
    """The campaign's result in one line: the final state message."""
    runs = f"{len(report.iterations)} iterations" + (f", {len(report.failures)} failed" if report.failures else "")
    base = f"baseline {report.baseline.accuracy:.1%}"
    if report.best_iteration is None:
        outcome = f"no iteration beat the {base}"
    else:
        gain = 100 * (report.best_score - report.baseline.accuracy)
        model = short_path(report.best_model_path, report.config.workspace)
        outcome = (
            f"best: iteration {report.best_iteration} at {report.best_score:.1%} vs {base} ({gain:+.1f} pt) → {model}"
        )
    split = report.selected_on
    test = ""
    if report.test_baseline is not None:
        result = report.test_best or report.test_baseline
        test = f"; test: {report.test_baseline.accuracy:.1%} → {result.accuracy:.1%} (n={result.n})"
        test += " (optimistic: chosen on test)" if report.optimistic else ""
    return f"{outcome} on {split}. {runs}; stopped: {report.stop_reason}{test}"


def run_logger(fallback: logging.Logger) -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run's logger inside a flow or task run (so a line shows in the run's log in the
    UI), else `fallback` (a library call outside any run)."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return fallback
