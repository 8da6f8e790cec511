"""The campaign's log lines, one per decision, and its final state message."""

from __future__ import annotations

from pathlib import Path

from internflow.narration import (
    baseline_line,
    iteration_line,
    outcome_line,
    proposal_line,
    result_line,
    scored_on_test_line,
)
from internflow.schemas import IterationParams, Proposal
from tests.sample_report import sample_report


def test_baseline_line_gives_score_n_and_interval(tmp_path: Path) -> None:
    line = baseline_line(sample_report(str(tmp_path)).baseline, "smollm2-135m")
    assert line == (
        "baseline: smollm2-135m scores 26.5% (n=200, 95% CI 20.9%–33.0%) on arithmetic (dev split); answers from vllm"
    )


def test_proposal_line_says_what_why_and_what_the_guard_did() -> None:
    proposal = Proposal(
        params=IterationParams(learning_rate=2e-4), rationale="loss still\nfalling", source="search",
        guard_action="force", guard_reasons="stall: 3 iterations without +1 point",
    )  # fmt: skip
    line = proposal_line(2, proposal)
    assert line.startswith(
        "iteration 2 proposed by search: sft from base on 480 rows of arithmetic-direct, lr 2e-04, 60 steps."
    )
    assert "Why: loss still falling" in line and "guard forced a change of direction (stall: 3" in line


def test_outcome_lines_give_the_gain_or_the_failure(tmp_path: Path) -> None:
    report = sample_report(str(tmp_path))
    best, second = report.iterations
    assert outcome_line(best, best) == (
        "iteration 1: 74.0% (n=200, 95% CI 67.5%–79.6%), improved, +47.5 pt vs baseline; now the best"
    )
    assert outcome_line(second, best).endswith("+40.5 pt vs baseline")
    assert outcome_line(report.failures[0], best) == (
        "iteration 3 failed (out_of_memory): TrainingFailed: out of memory"
    )
    assert iteration_line(best, str(tmp_path)).endswith(
        "trained 40 steps in 120 s (final loss 0.31) → models/sft-1; 160 s in all"
    )


def test_final_state_message_states_the_result(tmp_path: Path) -> None:
    assert result_line(sample_report(str(tmp_path))) == (
        "best: iteration 1 at 74.0% vs baseline 26.5% (+47.5 pt) → models/sft-1 on dev. "
        "2 iterations, 1 failed; stopped: iteration budget spent (3 of 3); test: 25.0% → 71.0% (n=200)"
    )
    nothing = sample_report(str(tmp_path)).model_copy(update={"best_iteration": None, "best_score": 0.265})
    assert result_line(nothing).startswith("no iteration beat the baseline 26.5% on dev.")


def test_the_line_on_the_test_split_shows_baseline_and_best_once_and_marks_selection_on_test(tmp_path: Path) -> None:
    report = sample_report(str(tmp_path))
    assert scored_on_test_line(report) == (
        "test split: baseline 25.0% (n=200, 95% CI 19.5%–31.4%) → best (iteration 1) 71.0% (n=200, 95% CI 64.3%–76.9%)"
    )
    on_test = report.model_copy(update={"selected_on": "test"})
    assert scored_on_test_line(on_test).endswith("chosen on the test split itself: optimistic")
    assert result_line(on_test).endswith("(optimistic: chosen on test)")
