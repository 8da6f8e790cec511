"""Preflight: the planner's data options per training method, screened on the bundled catalog."""

from __future__ import annotations

from internflow.catalog import validate_catalog
from internflow.preflight import usable_datasets_by_method


def test_each_method_gets_only_data_it_can_train_on_and_never_contaminated_data() -> None:
    names = tuple(entry.name for entry in validate_catalog("arithmetic"))

    by_method = usable_datasets_by_method(names, "arithmetic")

    assert set(by_method) == {"sft", "dpo", "grpo"}
    assert all("arithmetic-contaminated" not in usable for usable in by_method.values())
    assert {"arithmetic-direct", "arithmetic-noisy"} <= set(by_method["sft"])  # noisy: bad rows dropped, rest kept
    assert "arithmetic-prompts" not in by_method["sft"] and "arithmetic-prompts" in by_method["grpo"]
    assert by_method["dpo"] == ("arithmetic-preference",)


def test_grpo_is_never_offered_data_that_loses_its_answer_on_conversion() -> None:
    names = tuple(entry.name for entry in validate_catalog("arithmetic"))

    grpo = usable_datasets_by_method(names, "arithmetic")["grpo"]

    # Worked conversations and preference pairs carry no reference answer for the exact_answer reward.
    assert "arithmetic-worked" not in grpo and "arithmetic-preference" not in grpo
    assert {"arithmetic-direct", "arithmetic-prompts"} <= set(grpo)
