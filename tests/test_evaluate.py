"""The evaluate task: batched greedy generation, extraction, accuracy with a Wilson interval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect import flow

from internflow.benchmarks import get_benchmark
from internflow.schemas import EvalResult
from tasks.evaluate import evaluate_model, on_first_items, select_items, wilson_interval


def test_wilson_interval_matches_known_values() -> None:
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0


def test_quick_eval_subset_is_the_same_every_time_and_from_the_test_split() -> None:
    benchmark = get_benchmark("arithmetic")
    first, again = select_items(benchmark, 25, seed=3), select_items(benchmark, 25, seed=3)
    assert [i.id for i in first] == [i.id for i in again] and len(first) == 25
    assert all(item.id.startswith("arithmetic-test-") for item in first)
    assert len(select_items(benchmark, None, seed=0)) == 200


@flow
def _evaluate(model: str, samples: Path, benchmark: str) -> EvalResult:
    return evaluate_model(model, "tiny", benchmark, 10, 0, "check", samples, backend="transformers")


@pytest.mark.parametrize("benchmark", ["arithmetic", "family-mc"])
def test_evaluate_saves_every_sample_and_scores_them(
    prefect_harness, tiny_model: Path, tmp_path: Path, benchmark: str
) -> None:
    result = _evaluate(str(tiny_model), tmp_path, benchmark)
    samples = [json.loads(line) for line in Path(result.samples_path).read_text().splitlines()]
    assert result.n == len(samples) == 10
    assert result.n_correct == sum(s["correct"] for s in samples)
    assert result.unparseable == sum(s["extracted"] is None for s in samples)
    assert 0.0 <= result.ci_low <= result.accuracy <= result.ci_high <= 1.0


def test_a_smaller_eval_subset_is_a_prefix_of_a_larger_one() -> None:
    benchmark = get_benchmark("arithmetic")
    whole = [i.id for i in select_items(benchmark, None, seed=5)]
    assert sorted(whole) == sorted(i.id for i in benchmark.load("test"))
    assert [i.id for i in select_items(benchmark, 60, seed=5)] == whole[:60]
    assert [i.id for i in select_items(benchmark, 15, seed=5)] == whole[:15]


def test_a_result_is_re_scored_on_its_first_items_from_its_samples(
    prefect_harness, tiny_model: Path, tmp_path: Path
) -> None:
    result = _evaluate(str(tiny_model), tmp_path, "arithmetic")
    first_four = [json.loads(line) for line in Path(result.samples_path).read_text().splitlines()][:4]

    screened = on_first_items(result, 4)

    assert (screened.n, screened.n_correct) == (4, sum(s["correct"] for s in first_four))
    assert screened.accuracy == screened.n_correct / 4 and screened.label == "check[:4]"
    assert [s["id"] for s in first_four] == [i.id for i in select_items(get_benchmark("arithmetic"), 4, 0)]
    assert on_first_items(result, 10) is result


def test_re_scoring_without_the_samples_file_names_it(tmp_path: Path) -> None:
    result = EvalResult(
        label="baseline", benchmark="arithmetic", accuracy=0.5, n=10, n_correct=5, ci_low=0.2, ci_high=0.8,
        unparseable=0, samples_path=str(tmp_path / "gone.jsonl"), runtime_s=1.0,
    )  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"samples_path: .*gone.jsonl is missing"):
        on_first_items(result, 4)


@flow
def _evaluate_state(model: str, samples: Path) -> tuple[str, EvalResult]:
    state = evaluate_model(model, "run-name", "arithmetic", 6, 0, "check", samples, "transformers", return_state=True)
    return state.name, state.result()


def test_a_model_retrained_into_the_same_folder_is_evaluated_again_not_served_from_cache(
    prefect_harness, tiny_model: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = tmp_path / "models" / "sft-run"
    model.mkdir(parents=True)
    for path in tiny_model.iterdir():
        (model / path.name).write_bytes(path.read_bytes())
    (tmp_path / "samples").mkdir()
    first_state, first = _evaluate_state(str(model), tmp_path / "samples")
    again_state, again = _evaluate_state(str(model), tmp_path / "samples")
    assert (first_state, again_state) == ("Completed", "Cached") and again == first

    retrained = AutoModelForCausalLM.from_pretrained(model)  # same folder, same run name, other weights
    with torch.no_grad():
        for weight in retrained.parameters():
            weight.add_(torch.randn_like(weight))
    retrained.save_pretrained(model)
    third_state, _ = _evaluate_state(str(model), tmp_path / "samples")

    assert third_state == "Completed", "a cached score must not describe a model overwritten since"
