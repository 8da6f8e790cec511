"""The training data check: every column a method's trainer and reward functions read, in every
row, refused naming the file and line before any model is loaded (or any child started)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from internflow.training.data_check import check_training_data, needed_columns
from tests.training_data import method_request

INTERNFLOW = str(Path(sys.executable).parent / "internflow")


def _rewrite(path: str, rows: list[dict]) -> None:
    Path(path).write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_the_reward_functions_name_the_columns_they_need() -> None:
    assert needed_columns("grpo", ("exact_answer", "format"), "arithmetic") == ("prompt", "answer")
    assert needed_columns("grpo", ("format", "length_penalty"), "arithmetic") == ("prompt",)
    assert needed_columns("sft", ("exact_answer",), "arithmetic") == ("prompt", "completion")


def test_grpo_data_without_an_answer_column_is_refused_before_the_model_loads(tmp_path: Path) -> None:
    from internflow.training.common import run_training

    # A model folder that does not exist: reaching the model would fail differently.
    request = method_request(tmp_path / "no-such-model", tmp_path, "grpo-no-answer", method="grpo")
    _rewrite(request.data.path, [{"prompt": [{"role": "user", "content": "1 + 1 ="}]}])
    with pytest.raises(ValueError, match=r"grpo.jsonl:1: no \['answer'\] in this row; method 'grpo' with rewards"):
        run_training(request)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"prompt": "1 + 1 =", "answer": "2"}, {"prompt": "2 + 2 ="}], r"grpo.jsonl:2: no \['answer'\]"),
        ([{"prompt": "1 + 1 =", "answer": "2"}, {"prompt": "2 + 2 =", "answer": None}], r"grpo.jsonl:2: no"),
        ([{"prompt": "1 + 1 =", "answer": "two"}], r"grpo.jsonl:1: answer 'two' cannot be read as a 'arithmetic'"),
    ],
    ids=["missing", "null", "unreadable"],
)
def test_a_mix_of_rows_with_and_without_a_usable_answer_is_refused_naming_the_line(
    tmp_path: Path, rows: list[dict], message: str
) -> None:
    request = method_request(tmp_path / "model", tmp_path, "grpo-mixed", method="grpo")
    _rewrite(request.data.path, rows)
    with pytest.raises(ValueError, match=message):
        check_training_data(request)


def test_the_train_command_refuses_grpo_data_without_answers_with_exit_2(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "prompts.jsonl"
    _rewrite(str(data), [{"prompt": [{"role": "user", "content": "1 + 1 ="}]}])
    done = subprocess.run(
        [INTERNFLOW, "train", "--recipe", "grpo/smoke", "--data", str(data), "--model", str(tiny_model),
         "-w", str(tmp_path / "ws")],
        capture_output=True, text=True, timeout=300, env=os.environ | {"INTERNFLOW_OFFLINE": "1"}, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"{data}:1: no ['answer']" in " ".join(done.stderr.split()) and "Traceback" not in done.stderr
    assert not (tmp_path / "ws" / "checkpoints").exists() or not any((tmp_path / "ws" / "checkpoints").iterdir())
