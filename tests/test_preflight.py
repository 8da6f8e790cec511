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
