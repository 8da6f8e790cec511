"""A failed iteration's error (and the training run's failure.json) becomes typed findings, which
the campaign ledger keeps with the failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.states import Failed

from internflow.diagnostics import findings_from_failure, read_failure_file
from internflow.execution import TrainingFailed
from internflow.flows.ledger import CampaignLedger
from internflow.schemas import CampaignConfig, EvalResult, IterationParams, Proposal, TrainFailure

OOM = TrainFailure(
    kind="out_of_memory",
    message="out of memory at per_device_train_batch_size=1 (floor 1): CUDA out of memory. Use LoRA.",
    attempts=(
        "per_device_train_batch_size=4 gradient_accumulation_steps=1",
        "per_device_train_batch_size=2 gradient_accumulation_steps=2",
        "per_device_train_batch_size=1 gradient_accumulation_steps=4",
    ),
)


def test_an_out_of_memory_training_failure_suggests_lora() -> None:
    error = TrainingFailed("training child exited with code 3 (out_of_memory: ...)", OOM)
    (finding,) = findings_from_failure(error)
    assert (finding.kind, finding.severity, finding.direction) == ("out_of_memory", "error", "use_lora")
    assert finding.evidence["batch_settings_tried"] == 3 and finding.message == OOM.message


def test_an_hf_job_oom_is_recognised_from_its_log_text() -> None:
    log_tail = "last output:\ntorch.OutOfMemoryError: CUDA out of memory"
    error = TrainingFailed(f"hf-jobs: job abc ended ERROR: Job failed with exit code: 1; {log_tail}")
    assert [f.kind for f in findings_from_failure(error)] == ["out_of_memory"]


def test_another_training_error_is_train_failed() -> None:
    failure = TrainFailure(kind="error", message="ValueError: data: x.jsonl lacks column(s) ['prompt']")
    (finding,) = findings_from_failure(TrainingFailed("training child exited with code 1", failure))
    assert finding.kind == "train_failed" and "lacks column" in finding.message
    assert finding.direction == "change_direction"


def test_an_error_outside_training_is_stage_failed() -> None:
    (finding,) = findings_from_failure(ValueError("init_from: 'best' needs an earlier iteration"))
    assert finding.kind == "stage_failed" and finding.message.startswith("ValueError: init_from")


def test_a_long_error_is_shortened() -> None:
    (finding,) = findings_from_failure("RuntimeError: " + "x" * 5000)
    assert len(finding.message) <= 400


def test_failure_file_round_trip_and_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "failure.json"
    path.write_text(OOM.model_dump_json())
    assert read_failure_file(path) == OOM
    path.write_text('{"kind": "meltdown"}')
    with pytest.raises(ValueError, match=r"failure\.json is not a readable TrainFailure"):
        read_failure_file(path)


def _baseline() -> EvalResult:
    return EvalResult(
        label="baseline", benchmark="arithmetic", accuracy=0.3, n=100, n_correct=30,
        ci_low=0.2, ci_high=0.4, unparseable=0, samples_path="s.jsonl", runtime_s=1.0,
    )  # fmt: skip


def test_the_ledger_keeps_typed_findings_with_a_failed_iteration() -> None:
    ledger = CampaignLedger(CampaignConfig(), "ws", "base", "fp", _baseline())
    proposal = Proposal(params=IterationParams(), rationale="try it")
    ledger.record(proposal, Failed(data=TrainingFailed("training child exited with code 3", OOM)))
    (failed,) = ledger.failures
    assert [f.kind for f in failed.findings] == ["out_of_memory"]
    assert failed.error.startswith("TrainingFailed: training child exited with code 3")
    assert ledger.report("done").failures[0].findings == failed.findings
