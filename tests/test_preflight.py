"""Preflight: the planner's data options per training method, screened on the bundled catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from internflow.benchmarks import get_benchmark
from internflow.data.selection import select_training_data
from internflow.data.vetting import DataPaths
from internflow.schemas import CampaignConfig


def test_each_method_gets_only_data_it_can_train_on_and_never_contaminated_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")  # the bundled catalog alone
    paths = DataPaths(tmp_path / "hub", tmp_path / "hf")

    plan = select_training_data(get_benchmark("arithmetic"), CampaignConfig(), paths, tmp_path, "sft")

    by_method = plan.by_method
    assert set(by_method) == {"sft", "dpo", "grpo"}
    assert all("arithmetic-contaminated" not in usable for usable in by_method.values())
    assert {"arithmetic-direct", "arithmetic-noisy"} <= set(by_method["sft"])  # noisy: bad rows dropped, rest kept
    assert "arithmetic-prompts" in by_method["sft"] and "arithmetic-prompts" in by_method["grpo"]  # prompt + answer
    assert by_method["dpo"] == ("arithmetic-preference",)
    assert plan.default_datasets == ("arithmetic-direct",)
    assert plan.discovery.status == "offline" and "Hub not searched" in plan.discovery.notes[0]


def test_grpo_is_never_offered_data_without_a_reference_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    paths = DataPaths(tmp_path / "hub", tmp_path / "hf")

    grpo = select_training_data(get_benchmark("arithmetic"), CampaignConfig(), paths, tmp_path, "sft").by_method["grpo"]

    # Preference pairs carry no reference answer for the exact_answer reward (a chosen answer is
    # not a verified one); worked conversations state theirs, which the target's extractor reads.
    assert "arithmetic-preference" not in grpo
    assert {"arithmetic-direct", "arithmetic-prompts", "arithmetic-worked"} <= set(grpo)
