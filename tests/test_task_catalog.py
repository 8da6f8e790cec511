"""The eval task catalog (PostTrainBench targets, MMLU), user task specs, and evaluator integrity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from internflow.benchmarks import get_benchmark
from internflow.benchmarks.posttrainbench import (
    POSTTRAINBENCH,
    _aime_item,
    _gpqa_item,
    _gsm8k_item,
    _humaneval_item,
    _mmlu_item,
    extract_final_number,
    passes_tests,
)
from internflow.benchmarks.user_spec import TaskSpecError
from internflow.evaluation.integrity import EvaluatorChangedError, pin_evaluator

# Rows shaped as each Hub dataset's own (field names and answer formats).
GSM8K_ROW = {"question": "Tom has 1,200 apples and buys 34 more. How many?", "answer": "1200+34=1234\n#### 1,234"}
GPQA_ROW = {
    "Question": "Which particle mediates the electromagnetic force?",
    "Correct Answer": "Photon",
    "Incorrect Answer 1": "Gluon",
    "Incorrect Answer 2": "W boson",
    "Incorrect Answer 3": "Graviton",
}
HUMANEVAL_ROW = {
    "task_id": "HumanEval/0",
    "prompt": 'def add(a: int, b: int) -> int:\n    """Sum of a and b."""\n',
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}


def test_gsm8k_rows_give_the_final_number_and_a_fixed_reasoning_prompt() -> None:
    item = _gsm8k_item(GSM8K_ROW, 0)
    benchmark = POSTTRAINBENCH["gsm8k"]
    assert item.answer == "1234" and "The answer is N" in benchmark.prompt(item)
    assert benchmark.judge(benchmark.extract("1200 + 34 = 1234. The answer is 1234.") or "", item.answer)


def test_gpqa_options_are_shuffled_per_item_and_the_letter_follows_the_correct_one() -> None:
    benchmark = POSTTRAINBENCH["gpqa-main"]
    letters = set()
    for index in range(12):
        item = _gpqa_item(GPQA_ROW, index)
        assert item.choices["ABCD".index(item.answer)] == "Photon"
        assert item == _gpqa_item(GPQA_ROW, index)  # the same shuffle every time
        letters.add(item.answer)
    assert len(letters) > 1
    assert benchmark.extract("The answer is (C).") == "C"


def test_aime_and_mmlu_rows() -> None:
    aime = _aime_item({"problem": "Find n.", "answer": "070"}, 3)
    assert aime.answer == "70" and extract_final_number("so n = 5, hence \\boxed{70}") == "70"
    assert POSTTRAINBENCH["aime-2025"].judge("70", aime.answer)
    mmlu = _mmlu_item({"question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": 1, "subject": "math"}, 0)
    assert mmlu.answer == "B" and mmlu.choices == ("3", "4", "5", "6")


def test_humaneval_completions_are_judged_by_running_their_tests_in_a_separate_interpreter() -> None:
    item = _humaneval_item(HUMANEVAL_ROW, 0)
    benchmark = POSTTRAINBENCH["humaneval"]
    right = benchmark.extract("```python\n    return a + b\n```")
    assert right is not None and benchmark.judge(right, item.answer)
    assert not benchmark.judge("    return a - b\n", item.answer)
    full_function = "def add(a, b):\n    return b + a\n"
    assert benchmark.judge(full_function, item.answer)
    assert not passes_tests("    while True:\n        pass\n", item.answer, timeout_s=2)


def test_an_unreachable_hub_task_says_which_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # aime-2025: no test serves it from the local Hub, so neither the process nor datasets' cache has it.
    with pytest.raises(RuntimeError, match="math-ai/aime25"):
        get_benchmark("aime-2025").load("test")
    with pytest.raises(ValueError, match="evaluation data only"):
        get_benchmark("mmlu").load("train")


def _spec(tmp_path: Path, **overrides: object) -> Path:
    (tmp_path / "capitals.jsonl").write_text(
        "\n".join(
            json.dumps(row)
            for row in [
                {"country": "France", "capital": "Paris"},
                {"country": "Italy", "capital": "Rome"},
                {"country": "Spain", "capital": "Madrid"},
            ]
        )
    )
    spec = {
        "name": "capitals",
        "data": "capitals.jsonl",
        "prompt_template": "What is the capital of {country}? Answer with the city only.",
        "answer_field": "capital",
        "extraction": "regex:([A-Z][a-z]+)",
        "metric": "exact",
        "max_new_tokens": 8,
    } | overrides
    path = tmp_path / "capitals.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def test_a_user_task_spec_becomes_a_lighteval_task(tmp_path: Path, tiny_model: Path) -> None:
    from internflow.evaluation.lighteval_models import InProcessTransformersModel
    from internflow.evaluation.lighteval_tasks import run_lighteval

    benchmark = get_benchmark(str(_spec(tmp_path)))
    items = benchmark.load("test")
    assert [i.answer for i in items] == ["Paris", "Rome", "Madrid"]
    assert benchmark.prompt(items[0]) == "What is the capital of France? Answer with the city only."
    assert benchmark.extract("It is Paris, of course") == "It" and benchmark.extract("paris") is None
    assert benchmark.judge("paris", "Paris")

    rows = run_lighteval(
        benchmark, items, InProcessTransformersModel(str(tiny_model), str(tmp_path / "cache")), tmp_path / "w"
    )
    assert [r["expected"] for r in rows] == ["Paris", "Rome", "Madrid"]
    assert all(r["correct"] == (r["extracted"] is not None and r["extracted"] == r["expected"]) for r in rows)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"answer_field": "city"}, "has no field 'city'"),
        ({"extraction": "regex:[A-Z]+"}, "extraction: .*one capturing group"),
        ({"metric": "bleu"}, "metric:"),
        ({"data": "missing.jsonl"}, "data: .*missing.jsonl does not exist"),
        ({"surprise": 1}, "surprise: Extra inputs"),
    ],
)
def test_a_bad_task_spec_is_refused_naming_the_file_and_field(
    tmp_path: Path, override: dict[str, object], message: str
) -> None:
    path = _spec(tmp_path, **override)
    with pytest.raises(TaskSpecError, match=message) as refused:
        get_benchmark(str(path))
    assert str(tmp_path) in str(refused.value)


def test_choosing_an_eval_subset_leaves_a_spec_tasks_items_and_fingerprint_alone(tmp_path: Path) -> None:
    from internflow.evaluation.scoring import select_items

    benchmark = get_benchmark(str(_spec(tmp_path)))
    before = ([item.id for item in benchmark.load("test")], benchmark.fingerprint())
    chosen = select_items(benchmark, None, seed=1)  # a shuffle of what load() returned
    assert [item.id for item in chosen] != before[0], "pick a seed whose shuffle moves something"
    assert ([item.id for item in benchmark.load("test")], benchmark.fingerprint()) == before


def test_a_changed_test_set_is_refused_by_the_pinned_evaluator(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    first = pin_evaluator(workspace, get_benchmark(str(spec)))
    assert pin_evaluator(workspace, get_benchmark(str(spec))) == first  # unchanged: accepted

    with (tmp_path / "capitals.jsonl").open("a") as data:
        data.write("\n" + json.dumps({"country": "Peru", "capital": "Lima"}))
    with pytest.raises(EvaluatorChangedError, match="evaluator.json: evaluator: benchmark 'capitals'"):
        pin_evaluator(workspace, get_benchmark(str(spec)))


def test_evaluation_never_imports_training_code() -> None:
    probe = (
        "import sys, tasks.evaluate, internflow.evaluation.server\n"
        "print(sorted(m for m in sys.modules if m.startswith(('internflow.training', 'trl'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
