"""The diagnose stage: loss-curve findings, the significance test and the iteration verdict."""

from __future__ import annotations

import math
import random

import pytest
from prefect import flow

from internflow.diagnostics import find_loss_problems, significant_difference
from internflow.diagnostics.run import DiagnoseRequest, gather_evidence
from internflow.schemas import Diagnosis, EvalResult, LossPoint, TrainResult
from internflow.tasks.diagnose import diagnose_iteration


def _curve(values: list[float]) -> tuple[LossPoint, ...]:
    # The trainer logs every step (logging_steps=1), starting at step 1.
    return tuple(LossPoint(step=step, loss=loss) for step, loss in enumerate(values, start=1))


def _healthy(steps: int = 40) -> list[float]:
    noise = random.Random(0)
    return [0.4 + 2.2 * 0.9**step + noise.uniform(-0.05, 0.05) for step in range(steps)]


def _eval(n_correct: int, n: int = 100, unparseable: int = 0, label: str = "iteration") -> EvalResult:
    return EvalResult(
        label=label, benchmark="arithmetic", accuracy=n_correct / n, n=n, n_correct=n_correct,
        ci_low=0.0, ci_high=1.0, unparseable=unparseable, samples_path="samples.jsonl", runtime_s=1.0,
    )  # fmt: skip


def test_a_healthy_decreasing_curve_has_no_finding() -> None:
    assert find_loss_problems(_curve(_healthy())) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_names_the_first_bad_step(bad: float) -> None:
    values = _healthy()
    values[6:] = [bad] * (len(values) - 6)  # step 7 onwards
    (finding,) = find_loss_problems(_curve(values))
    assert finding.kind == "nan_loss" and finding.severity == "error"
    assert "step 7 " in finding.message
    assert "learning rate" in finding.suggestion


def test_a_curve_that_goes_down_then_explodes_is_divergence() -> None:
    values = _healthy(30) + [3.0, 4.5, 6.0, 7.5, 9.0, 9.5, 9.8, 10.0, 10.1, 10.2]
    (finding,) = find_loss_problems(_curve(values))
    assert finding.kind == "divergence" and finding.severity == "error"
    assert "lower the learning rate" in finding.suggestion


def test_a_flat_noisy_curve_is_no_learning() -> None:
    noise = random.Random(1)
    values = [2.0 + noise.uniform(-0.1, 0.1) for _ in range(40)]
    (finding,) = find_loss_problems(_curve(values))
    assert finding.kind == "no_learning" and finding.severity == "warning"


def test_no_logged_loss_is_a_no_learning_error() -> None:
    (finding,) = find_loss_problems(())
    assert finding.kind == "no_learning" and finding.severity == "error"


def test_significant_difference() -> None:
    assert significant_difference(_eval(60), _eval(30))
    assert significant_difference(_eval(30), _eval(60))
    assert not significant_difference(_eval(33), _eval(30))


def test_identical_perfect_or_zero_scores_are_not_significant() -> None:
    # Zero pooled variance must not divide by zero.
    assert not significant_difference(_eval(100), _eval(100))
    assert not significant_difference(_eval(0), _eval(0))


def _train(values: list[float]) -> TrainResult:
    return TrainResult(
        model_path="model", steps=len(values), losses=_curve(values), final_loss=values[-1] if values else None,
        runtime_s=1.0, trackio_project="p", trackio_run="r", checkpoint_dir="ckpt",
    )  # fmt: skip


_NAN_CURVE = _healthy()[:6] + [float("nan")] * 34

# name → (losses, evaluation); every case is judged against a 30/100 baseline and a 40/100 best.
CASES: dict[str, tuple[list[float], EvalResult]] = {
    "improved": (_healthy(), _eval(60)),
    "no_change": (_healthy(), _eval(33)),
    "regressed": (_healthy(), _eval(5)),
    "nan": (_NAN_CURVE, _eval(60)),
    "unparseable": (_healthy(), _eval(33, unparseable=25)),
    "unparseable_at_limit": (_healthy(), _eval(33, unparseable=20)),
}


@flow
def _diagnose(names: list[str]) -> list[Diagnosis]:
    # Inputs are built inside the flow (NaN losses stay out of flow parameters); one flow run
    # for every case keeps Prefect's per-run overhead to a single second.
    baseline, best = _eval(30, label="baseline"), _eval(40, label="best")
    return [
        diagnose_iteration(
            DiagnoseRequest(train=_train(CASES[name][0]), evaluation=CASES[name][1], baseline=baseline, best=best)
        )
        for name in names
    ]


@pytest.fixture(scope="module")
def diagnoses(prefect_harness) -> dict[str, Diagnosis]:
    return dict(zip(CASES, _diagnose(list(CASES)), strict=True))


def _kinds(diagnosis: Diagnosis) -> list[str]:
    return [finding.kind for finding in diagnosis.findings]


def test_a_significant_gain_is_improved(diagnoses: dict[str, Diagnosis]) -> None:
    diagnosis = diagnoses["improved"]
    assert diagnosis.verdict == "improved" and _kinds(diagnosis) == ["improved"]
    assert diagnosis.gain_vs_baseline == pytest.approx(0.3)
    assert diagnosis.gain_vs_best == pytest.approx(0.2)


def test_a_gain_inside_the_noise_is_no_change(diagnoses: dict[str, Diagnosis]) -> None:
    diagnosis = diagnoses["no_change"]
    assert diagnosis.verdict == "no_change" and _kinds(diagnosis) == ["no_change"]
    assert diagnosis.gain_vs_baseline == pytest.approx(0.03)


def test_a_significant_loss_is_regressed(diagnoses: dict[str, Diagnosis]) -> None:
    diagnosis = diagnoses["regressed"]
    # The loss fell while the score dropped below the starting model's: that is also overfitting.
    assert diagnosis.verdict == "regressed" and _kinds(diagnosis) == ["overfitting", "regressed"]
    assert diagnosis.findings[-1].direction == "lower_lr"


def test_a_nan_loss_fails_the_iteration_whatever_its_score(diagnoses: dict[str, Diagnosis]) -> None:
    diagnosis = diagnoses["nan"]
    assert diagnosis.verdict == "failed" and _kinds(diagnosis) == ["nan_loss"]
    assert math.isfinite(diagnosis.gain_vs_baseline)


def test_more_than_a_fifth_unparseable_is_a_format_failure(diagnoses: dict[str, Diagnosis]) -> None:
    assert _kinds(diagnoses["unparseable"]) == ["format_failure", "no_change"]
    assert "25/100" in diagnoses["unparseable"].findings[0].message
    assert "format_failure" not in _kinds(diagnoses["unparseable_at_limit"])


def test_evidence_without_a_samples_file_or_trackio_uses_the_train_result(tmp_path) -> None:
    evaluation = _eval(33).model_copy(update={"samples_path": str(tmp_path / "absent.jsonl")})
    evidence = gather_evidence(DiagnoseRequest(train=_train(_healthy()), evaluation=evaluation, baseline=_eval(30)))
    assert evidence.samples == () and evidence.metrics == {} and evidence.start == _eval(30)
    assert len(evidence.curve("train/loss")) == 40
