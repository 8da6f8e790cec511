"""Every detector on recorded metric curves: each failure shows up as its own finding, and healthy
curves produce no finding at all (tests/recordings/curves: one real SmolLM2 run, the rest synthetic)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from internflow.diagnostics import DETECTORS, Evidence, UnknownDetectorError, get_detector, load_samples, run_detectors
from internflow.diagnostics.evidence import Curve
from internflow.schemas import EvalResult, LossPoint, TrainResult

CURVES = Path(__file__).parent / "recordings" / "curves"
REAL_SAMPLES = CURVES / "eval_samples_smollm2_baseline.jsonl"
# SmolLM2-135M after SFT on reasoning-gym count_bits (final answers only), scored on its dev split.
COLLAPSED_SAMPLES = CURVES / "eval_samples_count_bits_collapsed.jsonl"


def recorded(name: str) -> dict[str, Curve]:
    body = json.loads((CURVES / f"{name}.json").read_text())
    return {metric: tuple((int(s), float(v)) for s, v in points) for metric, points in body["metrics"].items()}


def _eval(n_correct: int, n: int = 200, label: str = "iteration", unparseable: int = 0) -> EvalResult:
    return EvalResult(
        label=label, benchmark="arithmetic", accuracy=n_correct / n, n=n, n_correct=n_correct,
        ci_low=0.0, ci_high=1.0, unparseable=unparseable, samples_path="unused.jsonl", runtime_s=1.0,
    )  # fmt: skip


def _kinds(evidence: Evidence) -> list[str]:
    return [finding.kind for finding in run_detectors(evidence)]


HEALTHY_CURVES = ["sft_healthy_smollm2", "dpo_healthy", "grpo_healthy", "grpo_concise"]

# recording → (detector, the one finding kind every detector together reports)
FAILING_CURVES = {
    "sft_diverging": ("loss_health", "divergence"),
    "sft_nan": ("loss_health", "nan_loss"),
    "sft_flat": ("loss_health", "no_learning"),
    "sft_spiky": ("loss_spikes", "loss_spike"),
    "grpo_reward_collapse": ("reward_collapse", "reward_collapse"),
    "grpo_kl_blowup": ("kl_blowup", "kl_blowup"),
    "grpo_length_collapse": ("length_collapse", "length_collapse"),
}


@pytest.mark.parametrize("name", HEALTHY_CURVES)
def test_a_healthy_curve_has_no_finding_from_any_detector(name: str) -> None:
    assert run_detectors(Evidence(metrics=recorded(name))) == ()


@pytest.mark.parametrize("name", sorted(FAILING_CURVES))
def test_a_failing_curve_is_named_by_its_detector_alone(name: str) -> None:
    detector, kind = FAILING_CURVES[name]
    findings = run_detectors(Evidence(metrics=recorded(name)))
    assert [(f.detector, f.kind) for f in findings] == [(detector, kind)]
    finding = findings[0]
    assert finding.severity in ("warning", "error") and finding.direction and finding.suggestion
    assert finding.evidence, "a finding carries the numbers it rests on"


def test_nan_finding_points_at_the_first_bad_step() -> None:
    (finding,) = run_detectors(Evidence(metrics=recorded("sft_nan")))
    assert finding.steps == (18,) and finding.evidence["first_bad_step"] == 18 and finding.direction == "lower_lr"


def test_spike_finding_names_both_spikes() -> None:
    (finding,) = run_detectors(Evidence(metrics=recorded("sft_spiky")))
    assert finding.steps == (31, 45) and finding.evidence["worst_value"] == pytest.approx(2.6)


def test_reward_collapse_evidence_shows_the_spread_vanishing() -> None:
    (finding,) = run_detectors(Evidence(metrics=recorded("grpo_reward_collapse")))
    assert finding.evidence["early_reward_std"] > 0.1 and finding.evidence["late_reward_std"] < 0.05
    assert finding.direction == "change_data"


def test_kl_blowup_also_fires_on_a_non_finite_kl() -> None:
    metrics = dict(recorded("grpo_healthy"))
    metrics["train/kl"] = (*metrics["train/kl"][:30], (31, math.inf))
    (finding,) = run_detectors(Evidence(metrics=metrics))
    assert finding.kind == "kl_blowup" and 31 in finding.steps and finding.direction == "raise_beta"


def test_length_collapse_is_only_degenerate_when_the_reward_did_not_rise() -> None:
    concise, collapsed = recorded("grpo_concise"), recorded("grpo_length_collapse")
    assert concise["train/completions/mean_length"][-1][1] < 0.25 * concise["train/completions/mean_length"][0][1]
    assert get_detector("length_collapse")(Evidence(metrics=concise)) == []
    assert get_detector("length_collapse")(Evidence(metrics=collapsed))


def test_grpo_loss_near_zero_is_not_read_as_no_learning() -> None:
    # GRPO's surrogate loss hovers around 0: only the reward says whether it learned.
    assert get_detector("loss_health")(Evidence(metrics=recorded("grpo_healthy"))) == []


# ------------------------------------------------------------- evaluation detectors -----


def _format_broken_samples() -> tuple[dict, ...]:
    # The real SmolLM2 outputs, with every third answer replaced by one that states no number.
    rows = [dict(row) for row in load_samples(REAL_SAMPLES)]
    for row in rows[::3]:
        row.update(output="I think the answer is quite large.", extracted=None, correct=False)
    return tuple(rows)


def test_real_samples_have_no_format_failure() -> None:
    samples = load_samples(REAL_SAMPLES)
    evidence = Evidence(evaluation=_eval(sum(s["correct"] for s in samples), n=len(samples)), samples=samples)
    assert get_detector("format_failure")(evidence) == []


def test_a_third_unparseable_is_a_format_failure_with_examples() -> None:
    samples = _format_broken_samples()
    evidence = Evidence(evaluation=_eval(30, n=len(samples)), samples=samples)
    (finding,) = get_detector("format_failure")(evidence)
    assert finding.kind == "format_failure" and finding.direction == "fix_format"
    assert finding.evidence["unparseable"] == 67 and "quite large" in finding.message


def test_format_failure_falls_back_to_the_counts_without_samples() -> None:
    assert get_detector("format_failure")(Evidence(evaluation=_eval(30, unparseable=60)))
    assert not get_detector("format_failure")(Evidence(evaluation=_eval(30, unparseable=40)))


def test_a_model_that_answered_15_to_every_count_bits_item_learnt_the_prior_not_the_task() -> None:
    samples = load_samples(COLLAPSED_SAMPLES)
    evidence = Evidence(evaluation=_eval(34, n=len(samples)), samples=samples)
    (finding,) = get_detector("answer_collapse")(evidence)
    assert finding.kind == "answer_collapse" and finding.direction == "change_data"
    assert (finding.evidence["given"], finding.evidence["prior"], finding.evidence["accuracy"]) == (200, 0.17, 0.17)
    assert "'15' to 200 of 200 items" in finding.message
    assert _kinds(evidence) == ["answer_collapse"], "the recording yields its finding alone"


def test_a_model_right_on_98_percent_of_a_task_whose_answer_is_mostly_1_was_called_collapsed() -> None:
    # 176 of 200 items expect "1"; the model answers "1" to 180 of them and gets the other 20 right.
    rows = [{"extracted": "1", "expected": "1", "correct": True} for _ in range(176)]
    rows += [{"extracted": "1", "expected": "2", "correct": False} for _ in range(4)]
    rows += [{"extracted": "3", "expected": "3", "correct": True} for _ in range(20)]
    assert get_detector("answer_collapse")(Evidence(samples=tuple(rows))) == []


def test_a_yes_no_task_answered_yes_throughout_collapsed_whatever_the_case() -> None:
    # The judge ignores case: "yes" is right on the 100 "Yes" items, and the finding counts those.
    rows = tuple({"extracted": "yes", "expected": "Yes" if i % 2 else "No", "correct": bool(i % 2)} for i in range(200))
    (finding,) = get_detector("answer_collapse")(Evidence(samples=rows))
    assert (finding.evidence["prior"], finding.evidence["accuracy"]) == (0.5, 0.5)


def test_varied_empty_or_too_few_answers_are_no_collapse() -> None:
    assert get_detector("answer_collapse")(Evidence(samples=load_samples(REAL_SAMPLES))) == []
    # A yes/no task where 19 of 20 items are "Yes": answering "Yes" throughout is not a collapse.
    rows = tuple(
        {"extracted": "Yes", "expected": "Yes" if i else "No", "correct": bool(i)} for i in range(20)
    )  # fmt: skip
    assert get_detector("answer_collapse")(Evidence(samples=rows)) == []
    # An empty capture is no answer (40 of them are a format failure, not one answer given throughout).
    empty = tuple({"extracted": "", "expected": str(i), "correct": False} for i in range(40))
    assert get_detector("answer_collapse")(Evidence(samples=empty)) == []
    # Too few items to say.
    assert get_detector("answer_collapse")(Evidence(samples=load_samples(COLLAPSED_SAMPLES)[:10])) == []


def test_loss_down_and_accuracy_down_is_overfitting() -> None:
    evidence = Evidence(metrics=recorded("sft_healthy_smollm2"), evaluation=_eval(30), baseline=_eval(51))
    (finding,) = get_detector("overfitting")(evidence)
    assert finding.kind == "overfitting" and finding.direction == "fewer_steps"
    assert finding.evidence["train_late"] < finding.evidence["train_early"]


def test_loss_down_and_accuracy_up_is_not_overfitting() -> None:
    evidence = Evidence(metrics=recorded("sft_healthy_smollm2"), evaluation=_eval(80), baseline=_eval(51))
    assert get_detector("overfitting")(evidence) == []


def test_overfitting_compares_with_the_model_training_started_from() -> None:
    # init_from='best': above the baseline, yet well below the model it continued from.
    evidence = Evidence(
        metrics=recorded("sft_healthy_smollm2"), evaluation=_eval(70), baseline=_eval(51), start=_eval(110)
    )
    assert _kinds(evidence) == ["overfitting", "improved"]


def test_grpo_reward_up_and_accuracy_down_is_overfitting() -> None:
    evidence = Evidence(metrics=recorded("grpo_healthy"), evaluation=_eval(20), baseline=_eval(51))
    assert _kinds(evidence) == ["overfitting", "regressed"]
    assert "gamed" in run_detectors(evidence)[0].suggestion


def test_significantly_below_the_best_is_regressed_vs_best() -> None:
    evidence = Evidence(
        metrics=recorded("sft_healthy_smollm2"), evaluation=_eval(80), baseline=_eval(51), best=_eval(120)
    )
    assert _kinds(evidence) == ["improved", "regressed_vs_best"]
    assert run_detectors(evidence)[-1].direction == "return_to_best"


def test_within_the_noise_of_the_best_is_not_a_regression() -> None:
    evidence = Evidence(
        metrics=recorded("sft_healthy_smollm2"), evaluation=_eval(112), baseline=_eval(51), best=_eval(120)
    )
    assert _kinds(evidence) == ["improved"]


def test_a_difference_inside_the_interval_is_no_change() -> None:
    evidence = Evidence(metrics=recorded("sft_healthy_smollm2"), evaluation=_eval(55), baseline=_eval(51))
    (finding,) = run_detectors(evidence)
    assert finding.kind == "no_change" and finding.direction == "change_direction"
    assert finding.evidence["gain"] == pytest.approx(0.02)


def test_a_significant_gain_is_improved_not_no_change() -> None:
    evidence = Evidence(metrics=recorded("sft_healthy_smollm2"), evaluation=_eval(80), baseline=_eval(51))
    assert [(f.kind, f.direction) for f in run_detectors(evidence)] == [("improved", "keep_direction")]


def test_a_nan_run_gets_no_score_comparison() -> None:
    evidence = Evidence(metrics=recorded("sft_nan"), evaluation=_eval(80), baseline=_eval(51), best=_eval(120))
    assert _kinds(evidence) == ["nan_loss"]


# ------------------------------------------------------------- registry -----------------


def test_every_detector_has_a_failing_case_here() -> None:
    covered = {detector for detector, _ in FAILING_CURVES.values()} | {
        "format_failure",
        "answer_collapse",
        "overfitting",
        "vs_baseline",
        "vs_best",
    }
    assert covered == set(DETECTORS)


def test_an_unknown_detector_is_a_clear_error_listing_the_known_ones() -> None:
    with pytest.raises(UnknownDetectorError, match=r"'loss_spike'.*known: .*loss_spikes"):
        get_detector("loss_spike")
    with pytest.raises(UnknownDetectorError):
        run_detectors(Evidence(), ["nope"])


def test_bad_samples_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text('{"extracted": "1", "correct": true}\n{"output": "x"}\n')
    with pytest.raises(ValueError, match=r"samples\.jsonl line 2: expected an object with 'extracted'"):
        load_samples(path)


def test_a_loss_finding_says_when_the_run_was_resumed() -> None:
    curve = recorded("sft_spiky")["train/loss"]
    train = TrainResult(
        model_path="m", steps=60, losses=tuple(LossPoint(step=s, loss=v) for s, v in curve), final_loss=curve[-1][1],
        resumed_from_step=30, runtime_s=1.0, trackio_project="p", trackio_run="r", checkpoint_dir="c",
    )  # fmt: skip
    (finding,) = run_detectors(Evidence(train=train))  # no trackio: the TrainResult's own history
    assert finding.kind == "loss_spike" and "resumed from step 30" in finding.message
    assert finding.evidence["resumed_from_step"] == 30
