"""PostTrainBench's targets and MMLU-style multiple choice, defined over their Hub datasets.

Each definition fixes where the test items come from (repository, subset, split), how a dataset
row becomes an item (with a fixed prompt: the chat template is the model's own, applied by the
evaluation backend), how the answer is extracted and how it is judged.  They run wherever the
Hub is reachable; offline, loading them fails with a message naming the dataset.
"""

from __future__ import annotations

import functools
import json
import random
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from internflow.benchmarks.answers import (
    LETTERS,
    UnreadableAnswerError,
    extract_choice,
    extract_number,
    letters_equal,
    numbers_equal,
    read_choice,
    read_letter,
    read_number,
)
from internflow.benchmarks.base import Benchmark, BenchmarkItem, carve_dev, read_text, render_multiple_choice

__all__ = ["HubSplit", "POSTTRAINBENCH", "extract_code", "extract_final_number", "passes_tests"]

_COT = "\n\nThink step by step, then end with 'The answer is N'."


@dataclass(frozen=True)
class HubSplit:
    repo: str
    subset: str | None
    split: str

    def rows(self) -> list[dict[str, Any]]:
        from datasets import load_dataset

        try:
            return list(load_dataset(self.repo, self.subset, split=self.split))
        except Exception as error:  # datasets raises many kinds; all mean "not reachable here"
            raise RuntimeError(
                f"benchmark data {self.repo} ({self.subset or 'default'}, {self.split}) could not be loaded: {error}"
            ) from error


def _number(value: object, where: str) -> str:
    """A dataset's gold number, canonical; a form that cannot be read is refused naming the row."""
    number = read_number(value)
    if number is None:
        raise UnreadableAnswerError(f"{where}: answer {str(value)[-80:]!r} is not a number (nor a '#### N' answer)")
    return number


def _gsm8k_item(row: dict[str, Any], index: int) -> BenchmarkItem:
    final = _number(row["answer"], f"openai/gsm8k test row {index}")  # the worked answer's '#### N'
    return BenchmarkItem(id=f"gsm8k-{index}", question=row["question"] + _COT, answer=final)


def _gpqa_item(row: dict[str, Any], index: int) -> BenchmarkItem:
    options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    options = [o.strip() for o in options]
    order = list(range(4))
    random.Random(index).shuffle(order)  # a fixed shuffle per item: the correct option's letter varies
    return BenchmarkItem(
        id=f"gpqa-main-{index}",
        question=row["Question"].strip(),
        choices=tuple(options[i] for i in order),
        answer=LETTERS[order.index(0)],
    )


def _aime_item(row: dict[str, Any], index: int) -> BenchmarkItem:
    return BenchmarkItem(
        id=f"aime-2025-{index}",
        question=row["problem"] + "\n\nPut the final answer (an integer 0-999) in \\boxed{}.",
        answer=_number(row["answer"], f"math-ai/aime25 test row {index}"),
    )


def _mmlu_item(row: dict[str, Any], index: int) -> BenchmarkItem:
    choices = tuple(str(c) for c in row["choices"])
    try:
        answer = read_choice(row["answer"], choices)  # MMLU stores a 0-based index
    except UnreadableAnswerError as error:
        raise UnreadableAnswerError(f"cais/mmlu test row {index}: answer: {error}") from None
    return BenchmarkItem(id=f"mmlu-{index}", question=row["question"].strip(), choices=choices, answer=answer)


def _humaneval_item(row: dict[str, Any], index: int) -> BenchmarkItem:
    # The "answer" is what judging needs: the prompt the completion continues, and the tests.
    answer = json.dumps({"prompt": row["prompt"], "test": row["test"], "entry_point": row["entry_point"]})
    return BenchmarkItem(
        id=row["task_id"].replace("/", "-"),
        question="Complete this Python function. Reply with the code only.\n\n" + row["prompt"],
        answer=answer,
    )


def extract_final_number(output: str) -> str | None:
    """\\boxed{N} when present, else 'The answer is N' or the last number (extract_number's order)."""
    return extract_number(output)


_FENCE = re.compile(r"```(?:python)?\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(output: str) -> str | None:
    """The first fenced block, or the whole reply; None for an empty one."""
    fenced = _FENCE.search(output)
    code = fenced.group(1) if fenced else output
    return code if code.strip() else None


def passes_tests(code: str, answer: str, timeout_s: float = 10.0) -> bool:
    """Run a HumanEval completion against its tests in a fresh, isolated interpreter with a time
    limit (model-written code never runs in this process)."""
    spec = json.loads(answer)
    body = code if f"def {spec['entry_point']}" in code else spec["prompt"] + code
    program = f"{body}\n\n{spec['test']}\n\ncheck({spec['entry_point']})\n"
    with tempfile.TemporaryDirectory() as sandbox:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", program], cwd=sandbox, capture_output=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def _letter(answer: object) -> str | None:
    return read_letter(answer, 4)


def _hub_benchmark(
    name: str,
    kind: Literal["exact_answer", "multiple_choice"],
    source: HubSplit,
    to_item: Callable[[dict[str, Any], int], BenchmarkItem],
    *,
    description: str,
    max_new_tokens: int,
    extract: Callable[[str], str | None],
    judge: Callable[[str, str], bool],
    reference: Callable[[object], str | None],
    dev: HubSplit | None = None,
    dev_carve: int = 0,
) -> Benchmark:
    """A Hub target.  Its dev split: `dev` read whole (a validation split), or with `dev_carve` a
    seeded slice of that many items of `dev` (a training split; the rest stays training data, and
    the dataset stage quarantines rows repeating a dev prompt), or none."""

    # Read once per process: preflight, the evaluator's fingerprint and every evaluation ask for it.
    @functools.cache
    def load(split: Literal["train", "dev", "test"]) -> list[BenchmarkItem]:
        if split == "test":
            return [to_item(row, index) for index, row in enumerate(source.rows())]
        if split == "dev" and dev is not None:
            items = [to_item(row, index) for index, row in enumerate(dev.rows())]
            items = [item.model_copy(update={"id": f"{item.id}-dev"}) for item in items]
            if not dev_carve:
                return items
            test_prompts = [render_multiple_choice(i.question, i.choices) if i.choices else i.question
                            for i in load("test")]  # fmt: skip
            return carve_dev(items, test_prompts, dev_carve)[0]
        raise ValueError(
            f"benchmark {name!r} is evaluation data only: training data comes from the catalog or Hub search"
        )

    if dev is None:
        dev_source = ""
    elif dev_carve:
        dev_source = f"a seeded slice of {dev_carve} items of {dev.repo} ({dev.split}), never trained on"
    else:
        dev_source = f"{dev.repo} ({dev.subset or 'default'}, {dev.split})"

    return Benchmark(
        name=name,
        kind=kind,
        description=description,
        max_new_tokens=max_new_tokens,
        default_datasets=(),
        literature_query=f"post-training small language models {name}",
        extract=extract,
        judge=judge,
        reference=reference,
        loader=load,
        definition=json.dumps([source.repo, source.subset, source.split, name]),
        test_source=(source.repo, source.subset, source.split),
        dev_source=dev_source,
    )


POSTTRAINBENCH: dict[str, Benchmark] = {
    "gsm8k": _hub_benchmark(
        "gsm8k", "exact_answer", HubSplit("openai/gsm8k", "main", "test"), _gsm8k_item,
        description="Grade-school math word problems; final number after step-by-step reasoning.",
        max_new_tokens=512, extract=extract_number, judge=numbers_equal, reference=read_number,
        dev=HubSplit("openai/gsm8k", "main", "train"), dev_carve=200,
    ),
    "gpqa-main": _hub_benchmark(
        "gpqa-main", "multiple_choice", HubSplit("Idavidrein/gpqa", "gpqa_main", "train"), _gpqa_item,
        description="GPQA main set (gated on the Hub: needs HF_TOKEN): graduate-level 4-way multiple choice.",
        max_new_tokens=1024, extract=extract_choice, judge=letters_equal, reference=_letter,
    ),
    "aime-2025": _hub_benchmark(
        "aime-2025", "exact_answer", HubSplit("math-ai/aime25", None, "test"), _aime_item,
        description="AIME 2025 problems; integer answers 0-999.",
        max_new_tokens=2048, extract=extract_final_number, judge=numbers_equal, reference=read_number,
    ),
    "humaneval": _hub_benchmark(
        "humaneval", "exact_answer", HubSplit("openai/openai_humaneval", None, "test"), _humaneval_item,
        description="HumanEval: Python functions, pass@1 by running each problem's tests.",
        max_new_tokens=512, extract=extract_code, judge=passes_tests, reference=read_text,
    ),
    "mmlu": _hub_benchmark(
        "mmlu", "multiple_choice", HubSplit("cais/mmlu", "all", "test"), _mmlu_item,
        description="MMLU, all subjects: 4-way multiple choice.",
        max_new_tokens=16, extract=extract_choice, judge=letters_equal, reference=_letter,
        dev=HubSplit("cais/mmlu", "all", "validation"),
    ),
}  # fmt: skip
