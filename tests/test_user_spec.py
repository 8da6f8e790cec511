"""User task specs: prompt templates checked with Python's format parser, every data row validated
(one item, a prompt, a readable reference) and refused naming file:line, answers read by the one
normaliser — as numbers with separators, currency, worked answers, or options A-J."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from internflow.benchmarks import get_benchmark
from internflow.benchmarks.user_spec import TaskSpecError

INTERNFLOW = str(Path(sys.executable).parent / "internflow")


def _spec(tmp_path: Path, rows: list[object], **fields: object) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    spec = {"name": "mine", "data": "rows.jsonl", "prompt_template": "{q}", "answer_field": "a"} | fields
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


NUMERIC = {"extraction": "number", "metric": "numeric"}


def test_reference_with_thousands_separator_4_000_is_judged_in_a_task_spec(tmp_path: Path) -> None:
    rows = [
        {"q": "Tickets sold?", "a": "4,000"},
        {"q": "Price?", "a": "$1,250.50"},
        {"q": "Change?", "a": "\u22125"},
        {"q": "Apples?", "a": "3 + 69 = 72\n#### 72"},
        {"q": "Total?", "a": 12},
    ]
    benchmark = get_benchmark(str(_spec(tmp_path, rows, **NUMERIC)))
    items = benchmark.load("test")
    assert [item.answer for item in items] == ["4000", "1250.5", "-5", "72", "12"]
    outputs = ["They sold 4,000.", "It is $1,250.50.", "\u22125", "#### 72", "\\boxed{12}"]
    for item, output in zip(items, outputs, strict=True):
        extracted = benchmark.extract(output)
        assert extracted is not None and benchmark.judge(extracted, item.answer), output
    assert not benchmark.judge(benchmark.extract("The answer is 000") or "", items[0].answer)


def test_a_number_reference_is_read_for_exact_metric_with_number_extraction_too(tmp_path: Path) -> None:
    benchmark = get_benchmark(str(_spec(tmp_path, [{"q": "n?", "a": "1,234"}], extraction="number", metric="exact")))
    (item,) = benchmark.load("test")
    assert benchmark.judge(benchmark.extract("The answer is 1,234.") or "", item.answer)


def test_five_options_with_answer_index_4_become_option_e(tmp_path: Path) -> None:
    colours = ["red", "green", "blue", "white", "black"]
    rows = [
        {"q": "Night?", "o": colours, "a": 4},
        {"q": "Snow?", "o": colours, "a": "D"},
        {"q": "Sky?", "o": colours, "a": "blue"},
    ]
    benchmark = get_benchmark(str(_spec(tmp_path, rows, choices_field="o", extraction="choice", metric="choice")))
    items = benchmark.load("test")
    assert [item.answer for item in items] == ["E", "D", "C"]
    assert "E) black" in benchmark.prompt(items[0])
    assert benchmark.judge(benchmark.extract("**E) black**") or "", items[0].answer)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Put the answer in \\boxed{}. {q}", r"'\{\}' is a positional field"),
        ('{q} Reply as JSON: {"answer": 42}', r"'\{\"answer\": 42\}' does not name a row field"),
        ("{problem.text}", r"'\{problem.text\}' reads an attribute or item of field 'problem'"),
        ("{choices[0]}", r"'\{choices\[0\]\}' reads an attribute or item of field 'choices'"),
        ("Solve {q", "expected '}' before end of string"),
        ("Solve } {q}", "Single '}' encountered"),
        ("{0}", r"'\{0\}' does not name a row field"),
    ],
)
def test_literal_braces_in_prompt_template_are_refused_naming_file_field_and_the_fix(
    tmp_path: Path, template: str, message: str
) -> None:
    path = _spec(tmp_path, [{"q": "x", "a": "y"}], prompt_template=template)
    with pytest.raises(TaskSpecError, match=message) as refused:
        get_benchmark(str(path))
    assert str(refused.value).startswith(f"{path}: prompt_template: ")
    assert "'{{' and '}}'" in str(refused.value)


def test_doubled_braces_are_literal_braces(tmp_path: Path) -> None:
    path = _spec(tmp_path, [{"q": "2 + 2", "a": 4}], prompt_template='{q}? Put it in \\boxed{{}} or {{"a": N}}.')
    (item,) = get_benchmark(str(path)).load("test")
    assert item.question == '2 + 2? Put it in \\boxed{} or {"a": N}.'


@pytest.mark.parametrize(
    ("row", "fields", "message"),
    [
        (["x", "y"], {}, "a JSON list; each line must be one object"),
        ({"q": "x"}, {}, "the row has no field 'a'"),
        ({"a": "y"}, {}, "the row has no field 'q'"),
        ({"q": "x", "a": None}, {}, "a: empty; every row needs a reference answer"),
        ({"q": "x", "a": "  "}, {}, "a: empty"),
        ({"q": "x", "a": ["y", "z"]}, {}, "a: a list; a row gives exactly one reference answer"),
        ({"q": "   ", "a": "y"}, {}, "prompt_template gives an empty prompt"),
        ({"q": "x", "a": "about 5"}, NUMERIC, "a: 'about 5' is not a number"),
        ({"q": "x", "a": "B", "o": "red, green"}, {"choices_field": "o"}, "o: expected a list of non-empty options"),
        ({"q": "x", "a": 0, "o": ["only"]}, {"choices_field": "o"}, "o: 1 options; between 2 and 10"),
        ({"q": "x", "a": 0, "o": [str(n) for n in range(11)]}, {"choices_field": "o"}, "o: 11 options"),
        ({"q": "x", "a": "E", "o": ["a", "b", "c", "d"]}, {"choices_field": "o"}, "a: 'E' names option 5"),
        ({"q": "x", "a": 4, "o": ["a", "b", "c", "d"]}, {"choices_field": "o"}, "a: index 4 is out of range"),
        ({"q": "x", "a": "K"}, {"metric": "choice"}, "a: 'K' is not an option letter"),
        ({"q": "x", "a": "y"}, {"prompt_template": "{q:d}"}, "prompt_template cannot be filled from this row"),
    ],
)
def test_every_row_must_give_one_item_with_a_prompt_and_a_usable_reference(
    tmp_path: Path, row: object, fields: dict[str, object], message: str
) -> None:
    path = _spec(tmp_path, [row], **fields)
    data = tmp_path / "rows.jsonl"
    data.write_text("\n" + data.read_text())  # a blank line first: skipped, but counted
    with pytest.raises(TaskSpecError, match=message) as refused:
        get_benchmark(str(path))
    assert str(refused.value).startswith(f"{tmp_path / 'rows.jsonl'}:2: ")


def test_a_repeated_item_id_is_refused_naming_both_lines(tmp_path: Path) -> None:
    path = _spec(tmp_path, [{"id": 1, "q": "x", "a": "y"}, {"id": 1, "q": "z", "a": "w"}], id_field="id")
    with pytest.raises(TaskSpecError, match=r"rows.jsonl:2: id: 1 is also the id of line 1"):
        get_benchmark(str(path))


def test_a_bad_template_is_exit_2_with_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = _spec(tmp_path, [{"q": "x", "a": "y"}], prompt_template="Answer in \\boxed{}: {q}")
    done = subprocess.run(
        [INTERNFLOW, "evaluate", "--benchmark", str(path), "-w", str(tmp_path / "ws")],
        capture_output=True, text=True, timeout=120, env=os.environ | {"INTERNFLOW_OFFLINE": "1"}, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and f"{path}: prompt_template:" in " ".join(done.stderr.split())


class _FakeOpenAIServer:
    """A loopback stand-in for an OpenAI-compatible server (the outside world here): /v1/models, and
    /v1/completions answering each token-id prompt with the reply whose key the prompt contains."""

    def __init__(self, tokenizer: object, replies: dict[str, str]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self._send({"object": "list", "data": [{"id": "fake", "object": "model", "max_model_len": 512}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                choices = []
                for index, prompt in enumerate(body["prompt"]):
                    text = tokenizer.decode(prompt)  # type: ignore[attr-defined]
                    reply = next(answer for key, answer in fake.replies.items() if key in text)
                    ids = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]  # type: ignore[operator,attr-defined]
                    choices.append({"index": index, "text": reply, "token_ids": ids, "finish_reason": "stop"})
                self._send({"id": "c", "object": "text_completion", "created": 0, "model": "fake", "choices": choices})

            def _send(self, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.replies = replies
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_internflow_evaluate_scores_every_answer_form_right(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    colours = ["red", "green", "blue", "white", "black"]
    numbers = [  # (question, reference as the dataset writes it, what the model answers)
        ("How many tickets?", "4,000", "They sold 4,000."),
        ("How many books?", "1,234", "The answer is 1,234."),
        ("What price?", "$1,250.50", "It costs $1,250.50."),
        ("What change?", "\u22125", "The change is \u22125."),
        ("How many apples?", "3 + 69 = 72\n#### 72", "3 + 69 = 72\n#### 72"),
        ("How much?", "$5.00", "$5.00"),
        ("What total?", 12, "so \\boxed{12}"),
        ("How many in all?", "72", "72, in total"),
    ]
    choices = [("Grass?", 1, "The answer is **B**"), ("Sky?", "C", "**C) blue**"), ("Night?", 4, "**E**")]
    specs = {
        "numbers": _spec(tmp_path / "numbers", [{"q": q, "a": a} for q, a, _ in numbers], **NUMERIC),
        "choices": _spec(
            tmp_path / "choices", [{"q": q, "o": colours, "a": a} for q, a, _ in choices],
            choices_field="o", extraction="choice", metric="choice",
        ),
    }  # fmt: skip
    replies = {q: reply for q, _, reply in numbers + choices}
    with _FakeOpenAIServer(AutoTokenizer.from_pretrained(tiny_model), replies) as endpoint:
        for name, spec in specs.items():
            done = subprocess.run(
                [INTERNFLOW, "evaluate", "--model", str(tiny_model), "--benchmark", str(spec),
                 "--eval-endpoint", endpoint, "-w", str(tmp_path / name / "ws")],
                capture_output=True, text=True, timeout=300, env=os.environ | {"INTERNFLOW_OFFLINE": "1"}, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            n = len(numbers) if name == "numbers" else len(choices)
            assert f"mine (test): 100.0% (n={n}," in done.stdout, done.stdout
