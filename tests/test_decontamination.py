"""The decontamination gate: n-gram overlap with the eval prompts, per row and per dataset."""

from __future__ import annotations

import pytest

from internflow.benchmarks import get_benchmark
from internflow.data.decontamination import ContaminationReport, DecontaminationConfig, EvalIndex, normalized_tokens

Q = "State the final answer to the following arithmetic problem: {} ="


@pytest.fixture(scope="module")
def arithmetic_gate() -> EvalIndex:
    benchmark = get_benchmark("arithmetic")
    return EvalIndex(benchmark.prompt(item) for item in benchmark.load("test"))


def test_normalization_ignores_case_and_spacing_but_keeps_symbols() -> None:
    assert normalized_tokens("  What IS 2+3 ?") == ["what", "is", "2", "+", "3", "?"]


def test_a_test_item_is_caught_even_re_cased_and_re_spaced(arithmetic_gate: EvalIndex) -> None:
    item = get_benchmark("arithmetic").load("test")[0]
    assert arithmetic_gate.overlap(item.question) == 1.0
    assert arithmetic_gate.is_contaminated("  " + item.question.upper().replace(" ", "   "))


def test_a_train_item_sharing_only_the_template_passes(arithmetic_gate: EvalIndex) -> None:
    for item in get_benchmark("arithmetic").load("train")[:300]:
        assert not arithmetic_gate.is_contaminated(item.question), item.question


def test_short_prompts_are_compared_whole() -> None:
    gate = EvalIndex(["Which city is the capital of France? Answer in one word."], DecontaminationConfig(ngram=13))
    assert gate.is_contaminated("capital of France?")
    assert not gate.is_contaminated("capital of Spain?")


def test_the_threshold_is_configurable() -> None:
    eval_prompt = "one two three four five six seven eight nine ten"
    row = "one two three four five six seven eight nine eleven"  # 2 of its 3 8-grams are in the eval set
    assert EvalIndex([eval_prompt]).overlap(row) == pytest.approx(2 / 3)
    assert not EvalIndex([eval_prompt]).is_contaminated(row)
    assert EvalIndex([eval_prompt], DecontaminationConfig(row_threshold=0.6)).is_contaminated(row)


def test_a_dataset_is_blocked_whole_only_above_the_ratio_and_the_minimum_count() -> None:
    config = DecontaminationConfig(dataset_block_ratio=0.1, min_rows_to_block=5)
    many = ContaminationReport.judge("leaky", 100, ["q"] * 20, config)
    assert many.blocked and "whole dataset is blocked" in many.reason and many.examples == ("q", "q", "q")
    few = ContaminationReport.judge("leaky", 100, ["q"] * 5, config)
    assert not few.blocked and "5 of 100 rows (5.0%)" in few.reason
    tiny = ContaminationReport.judge("tiny", 6, ["q"] * 2, config)  # 33 % of a handful is not a leaked split
    assert not tiny.blocked
    assert ContaminationReport.judge("clean", 10, [], config).reason == "no row repeats an eval prompt"
