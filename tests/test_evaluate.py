"""The evaluate task: batched greedy generation, extraction, accuracy with a Wilson interval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect import flow

from internflow.benchmarks import get_benchmark
from internflow.evaluation.scoring import on_first_items, select_items, wilson_interval
from internflow.schemas import EvalRequest, EvalResult, ServedModel
from internflow.tasks.evaluate import evaluate_model


def _request(model: str, samples: Path, benchmark: str = "arithmetic", **fields: object) -> EvalRequest:
    """A transformers evaluation of the first 10 items of the seed-0 test subset, labelled `check`."""
    defaults: dict[str, object] = {"model_fingerprint": "tiny", "limit": 10, "seed": 0, "label": "check",
                                   "backend": "transformers"}  # fmt: skip
    return EvalRequest(model_path=model, benchmark=benchmark, samples_dir=samples, **(defaults | fields))  # type: ignore[arg-type]


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
    return evaluate_model(_request(model, samples, benchmark))


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
def _evaluate_state(model: str, samples: Path, server: ServedModel | None = None) -> tuple[str, EvalResult]:
    request = _request(model, samples, model_fingerprint="run-name", limit=6, server=server)
    state = evaluate_model(request, return_state=True)
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


def test_the_server_is_not_in_the_evaluation_cache_key_and_the_split_is(
    prefect_harness, tiny_model: Path, tmp_path: Path
) -> None:
    """The server is where answers come from, not what they are: the same request on another server
    is served from cache; the same model on another split is evaluated."""
    other = ServedModel(base_url="http://127.0.0.1:9/v1", model="tiny", model_path=str(tiny_model))
    request = _request(str(tiny_model), tmp_path)
    assert request.cache_inputs() == request.model_copy(update={"server": other}).cache_inputs()
    assert request.cache_inputs() != request.model_copy(update={"split": "dev"}).cache_inputs()

    first_state, first = _evaluate_state(str(tiny_model), tmp_path)
    again_state, again = _evaluate_state(str(tiny_model), tmp_path, server=other)  # transformers: never asked

    assert (first_state, again_state) == ("Completed", "Cached") and again == first


def over_length_spec(folder: Path) -> Path:
    """A task spec of three short sums and, second, one prompt far over the tiny model's 512 positions."""
    long_prompt = "Read this first. " + " ".join(f"Note {n}: add the numbers below." for n in range(300))
    rows = [
        {"q": "1 + 1 =", "a": 2},
        {"q": long_prompt + " 2 + 2 =", "a": 4},
        {"q": "3 + 3 =", "a": 6},
        {"q": "4 + 4 =", "a": 8},
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sums.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    spec = folder / "sums.yaml"
    spec.write_text(
        "name: sums\ndata: sums.jsonl\nprompt_template: '{q}'\nanswer_field: a\n"
        "extraction: number\nmetric: numeric\nmax_new_tokens: 8\n"
    )
    return spec


def check_over_length(result: EvalResult, tiny_model: Path) -> list[dict]:
    """The long item is marked, counted and unanswered; the others are answered and scored."""
    from transformers import AutoTokenizer

    from internflow.evaluation.lighteval_models import chat_prompt_ids

    rows = [json.loads(line) for line in Path(result.samples_path).read_text().splitlines()]
    long_row = next(row for row in rows if len(row["prompt"]) > 1000)
    (long_ids,) = chat_prompt_ids(AutoTokenizer.from_pretrained(tiny_model), [long_row["prompt"]])
    assert len(long_ids) > 512, "the long prompt must exceed the tiny model's context"
    assert long_row["over_length"] is True and long_row["output"] == "" and long_row["correct"] is False
    assert [row["over_length"] for row in rows].count(True) == 1 and result.over_length == 1
    assert result.n == 4 and result.unparseable == sum(r["extracted"] is None for r in rows if not r["over_length"])
    assert all(row["output"] for row in rows if not row["over_length"])  # the others were answered
    return rows


def test_a_prompt_longer_than_the_context_is_marked_over_length_and_the_rest_scored(
    prefect_harness, tiny_model: Path, tmp_path: Path
) -> None:
    spec = over_length_spec(tmp_path / "spec")

    @flow
    def evaluate() -> EvalResult:
        return evaluate_model(_request(str(tiny_model), tmp_path, str(spec), limit=None, label="long"))

    check_over_length(evaluate(), tiny_model)


def _samples(benchmark_name: str, wrong: int, none_found: int) -> list[dict]:
    """Per-sample rows as the evaluation writes them: the benchmark's real prompts, some answers wrong."""
    bench = get_benchmark(benchmark_name)
    rows = []
    for i, item in enumerate(bench.load("test")[:8]):
        correct = i >= wrong + none_found
        extracted = None if i < none_found else (item.answer if correct else "999")
        output = "I am not sure | maybe <b>" if extracted is None else f"The answer is {extracted}."
        rows.append({"id": item.id, "prompt": bench.prompt(item), "output": output, "extracted": extracted,
                     "expected": item.answer, "correct": correct})  # fmt: skip
    return rows


def _result(samples: list[dict]) -> EvalResult:
    n_correct = sum(s["correct"] for s in samples)
    return EvalResult(
        label="iteration-1", benchmark="arithmetic", accuracy=n_correct / len(samples), n=len(samples),
        n_correct=n_correct, ci_low=0.1, ci_high=0.9, unparseable=sum(s["extracted"] is None for s in samples),
        samples_path="/ws/eval-samples/iteration-1.jsonl", runtime_s=1.0, backend="transformers",
    )  # fmt: skip


def test_evaluation_artifact_shows_the_whole_question_of_each_failure_under_a_header() -> None:
    """Regression: prompts cut at 60 characters showed only the shared instruction; the verdict column
    had no header; nothing said the rows were the failures."""
    from internflow.evaluation.samples_markdown import evaluation_markdown
    from tests.test_markdown import rendered_cells

    samples = _samples("arithmetic", wrong=2, none_found=1)
    markdown = evaluation_markdown(_result(samples), samples)
    assert "### Failures, worst first (3 of 3 shown)" in markdown
    assert "Every prompt reads `State the final answer to the following arithmetic problem: … =`" in markdown
    header = markdown[markdown.index("| item |") :].splitlines()[0]
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "item", "question", "model output", "extracted answer", "expected answer"
    ]  # fmt: skip
    rows = rendered_cells(markdown)
    assert [r[0] for r in rows] == [s["id"] for s in samples[:3]], "no answer found comes first, then wrong ones"
    assert rows[0][2] == "I am not sure | maybe <b>" and rows[0][3] == "none found"
    assert [r[1] for r in rows] == [s["prompt"].split(": ")[1].removesuffix(" =") for s in samples[:3]]


def test_long_questions_are_shown_whole_in_labelled_blocks_not_a_table_that_hides_columns() -> None:
    """The Prefect UI does not wrap table cells: a 300-character question would push the answers
    out of sight, so each failure gets a block that wraps."""
    import html

    from markdown_it import MarkdownIt

    from internflow.evaluation.samples_markdown import evaluation_markdown

    samples = _samples("family-mc", wrong=2, none_found=1)
    markdown = evaluation_markdown(_result(samples), samples)
    assert "<table>" not in MarkdownIt("commonmark").enable("table").render(markdown)
    text = " ".join(html.unescape(MarkdownIt("commonmark").render(markdown)).split())
    assert "Every prompt reads" in text and "Answer with the letter of the correct option." in text
    for sample in samples[:3]:
        question = " ".join(sample["prompt"].removesuffix("Answer with the letter of the correct option.").split())
        assert f"<strong>Question:</strong> {question}" in text, question
        assert f"expected answer: {sample['expected']}" in text
    assert "<strong>Model output:</strong> I am not sure | maybe <b>" in text


def test_evaluation_artifact_with_no_failure_says_so() -> None:
    from internflow.evaluation.samples_markdown import evaluation_markdown

    samples = _samples("arithmetic", wrong=0, none_found=0)
    assert evaluation_markdown(_result(samples), samples).endswith("All 8 answers are correct.")
