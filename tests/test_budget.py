"""Campaign budgets: every stop has a stated reason, and the next iteration's cost is estimated."""

from __future__ import annotations

import pytest

from internflow.agent.budget import estimate_iteration_seconds, stop_reason
from internflow.schemas import (
    Diagnosis,
    EvalResult,
    IterationParams,
    IterationResult,
    LiteratureReport,
    PreparedDataset,
    TrainResult,
)

PARAMS = IterationParams(max_steps=40, per_device_train_batch_size=8, gradient_accumulation_steps=1)


def _result(
    params: IterationParams, wall_s: float, train_s: float | None = None, eval_s: float = 0.0
) -> IterationResult:
    """A finished iteration; by default all of its wall time was training."""
    evaluation = EvalResult(
        label="eval", benchmark="arithmetic", accuracy=0.5, n=200, n_correct=100, ci_low=0.43, ci_high=0.57,
        unparseable=0, samples_path="samples.jsonl", runtime_s=eval_s,
    )  # fmt: skip
    return IterationResult(
        index=1, params=params, literature=LiteratureReport(query="q", status="offline"),
        data=PreparedDataset(path="train.jsonl", rows=8, sources=(), fingerprint="f"),
        train=TrainResult(model_path="m", steps=params.max_steps, losses=(), final_loss=None,
                          runtime_s=wall_s if train_s is None else train_s, trackio_project="p", trackio_run="r",
                          checkpoint_dir="c"),
        evaluation=evaluation,
        diagnosis=Diagnosis(verdict="no_change", gain_vs_baseline=0.0, gain_vs_best=None, findings=()),
        wall_s=wall_s,
    )  # fmt: skip


def test_no_estimate_before_the_first_iteration() -> None:
    assert estimate_iteration_seconds(PARAMS, []) is None


@pytest.mark.parametrize(
    ("update", "expected_s"),
    [
        ({}, 120.0),
        ({"max_steps": 80}, 240.0),
        ({"per_device_train_batch_size": 4}, 60.0),
        ({"gradient_accumulation_steps": 3}, 360.0),
        ({"max_steps": 20, "per_device_train_batch_size": 16}, 120.0),
        ({"learning_rate": 1e-3, "use_lora": True}, 120.0),  # same optimizer work, same estimate
    ],
)
def test_estimate_scales_the_last_wall_time_by_steps_times_batch(update: dict, expected_s: float) -> None:
    earlier = _result(PARAMS.model_copy(update={"max_steps": 10}), wall_s=999.0)
    history = [earlier, _result(PARAMS, wall_s=120.0)]  # only the last iteration counts
    assert estimate_iteration_seconds(PARAMS.model_copy(update=update), history) == pytest.approx(expected_s)


def test_a_shortened_run_keeps_its_fixed_costs_in_the_estimate() -> None:
    # 60 s in all: 40 s training, 15 s evaluating, 5 s of the rest (planning, diagnosis, set-up).
    history = [_result(PARAMS, wall_s=60.0, train_s=40.0, eval_s=15.0)]
    # A quarter of the steps trains for a quarter of the time; evaluation and the rest stay.
    assert estimate_iteration_seconds(PARAMS.model_copy(update={"max_steps": 10}), history) == pytest.approx(30.0)
    # A screen scored on half the eval subset evaluates for half the time.
    screen = PARAMS.model_copy(update={"train_fraction": 0.25, "eval_fraction": 0.5})
    assert estimate_iteration_seconds(screen, history) == pytest.approx(10.0 + 7.5 + 5.0)


def _stop(**overrides: float | int | None) -> str | None:
    kwargs = dict(elapsed_s=60.0, time_budget_s=600.0, iterations_done=1, max_iterations=3, next_estimate_s=None)
    return stop_reason(**(kwargs | overrides))  # type: ignore[arg-type]


def test_no_stop_while_budgets_remain() -> None:
    assert _stop() is None
    assert _stop(next_estimate_s=539.0) is None  # fits in the 540 s left


def test_iterations_spent_stops_with_the_count() -> None:
    assert _stop(iterations_done=3) == "iteration budget spent (3 of 3)"


def test_time_spent_stops_with_the_minutes() -> None:
    assert _stop(elapsed_s=600.0) == "time budget spent (10.0 of 10.0 min)"
    assert _stop(elapsed_s=900.0, next_estimate_s=1.0) == "time budget spent (15.0 of 10.0 min)"


def test_a_next_iteration_that_would_overrun_stops_before_it_starts() -> None:
    reason = _stop(elapsed_s=480.0, next_estimate_s=180.0)
    assert reason is not None and reason.startswith("time budget: the next iteration needs ~3.0 min")
    assert "2.0 min left of 10.0" in reason


def test_the_iteration_budget_is_reported_before_the_time_budget() -> None:
    reason = _stop(iterations_done=3, elapsed_s=900.0, next_estimate_s=1e9)
    assert reason is not None and reason.startswith("iteration budget")


def test_switching_method_scales_by_the_methods_relative_step_cost() -> None:
    history = [_result(PARAMS, wall_s=120.0)]
    dpo = PARAMS.model_copy(update={"method": "dpo"})
    assert estimate_iteration_seconds(dpo, history) == pytest.approx(300.0)  # 2.5 × the SFT step
    # Once a DPO iteration has been measured, its own rate is used, not the prior.
    history.append(_result(dpo, wall_s=200.0))
    assert estimate_iteration_seconds(dpo, history) == pytest.approx(200.0)
    assert estimate_iteration_seconds(PARAMS, history) == pytest.approx(120.0)


def test_job_estimate_is_hours_times_price_and_a_costly_job_stops_the_campaign() -> None:
    from internflow.agent.budget import estimate_job

    job = estimate_job(5400.0, "a10g-small", usd_per_hour=1.0)
    assert job.hours == pytest.approx(1.5) and job.usd == pytest.approx(1.5)
    assert estimate_job(5400.0).usd == 0.0  # local hardware
    assert _stop(next_job=job, money_left_usd=2.0) is None
    reason = _stop(next_job=job, money_left_usd=1.0)
    assert reason is not None and reason.startswith("money budget: the next job needs ~90 min on a10g-small ≈ $1.50")
    with pytest.raises(ValueError, match="must be >= 0"):
        estimate_job(-1.0)


def test_a_screen_is_estimated_at_its_share_of_the_steps() -> None:
    history = [_result(PARAMS, wall_s=100.0)]
    screen = PARAMS.model_copy(update={"train_fraction": 0.25, "eval_fraction": 0.5})
    assert estimate_iteration_seconds(screen, history) == pytest.approx(25.0)


def test_self_distillation_adds_its_sampling_to_the_estimate() -> None:
    history = [_result(PARAMS, wall_s=100.0)]
    distilled = PARAMS.model_copy(update={"self_distill_k": 4, "self_distill_prompts": 200})
    # 800 answers at a tenth of an SFT example each, on top of 40 steps × 8 examples.
    assert estimate_iteration_seconds(distilled, history) == pytest.approx(100.0 * (320 + 80) / 320)


def test_a_round_counts_as_the_sum_of_its_iterations_and_the_stop_reason_says_so() -> None:
    from internflow.agent.budget import estimate_job, round_estimate_s

    history = [_result(PARAMS, wall_s=120.0)]
    longer = PARAMS.model_copy(update={"max_steps": 80})
    assert round_estimate_s([PARAMS, longer], history) == pytest.approx(120.0 + 240.0)
    assert round_estimate_s([PARAMS], []) is None  # nothing measured yet
    # 360 s for the round, 540 s left: it fits; a third would not.
    assert _stop(next_estimate_s=360.0, round_size=2) is None
    assert _stop(next_estimate_s=600.0, round_size=3) == (
        "time budget: the next round of 3 iterations needs ~10.0 min (the sum of its iterations), 9.0 min left of 10.0"
    )
    job = estimate_job(7200.0, "gpu", 2.0)  # two one-hour iterations at $2/h
    reason = stop_reason(elapsed_s=0, time_budget_s=1e6, iterations_done=0, max_iterations=9, next_estimate_s=7200.0,
                         next_job=job, money_left_usd=3.0, round_size=2)  # fmt: skip
    assert reason == (
        "money budget: the next round of 2 iterations needs ~120 min on gpu ≈ $4.00 (at $2.00/h) "
        "(the sum of its iterations), $3.00 left"
    )
