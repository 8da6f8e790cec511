"""The `internflow` command: instant help, and bad input refused with a clear, named error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

INTERNFLOW = str(Path(sys.executable).parent / "internflow")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INTERNFLOW, *args], capture_output=True, text=True, timeout=300, env=os.environ | (env or {}), check=False
    )


def test_help_does_not_import_torch_or_prefect() -> None:
    probe = (
        "import sys\nfrom internflow.deployments.cli import app\nsys.argv = ['internflow', '--help']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('torch', 'transformers', 'prefect', 'trl') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "run" in out and "leaderboard" in out


@pytest.mark.parametrize(
    ("args", "expected"),  # each refused before any work starts
    [
        (["--model", "/no/such/model"], "not the embedded default"),
        (["--benchmark", "nope"], "benchmark: unknown benchmark 'nope'"),
        (["--time-budget-minutes", "0"], "time_budget_minutes"),
        (["--max-iterations", "0"], "max_iterations"),
        (["--planner", "oracle"], "planner: unknown planner 'oracle'"),
        (["--recipe", "sft/huge"], "recipe: no recipe 'sft/huge'"),
        (["--training-backend", "cloud"], "training_backend"),
        (["--money-budget-usd", "0"], "money_budget_usd"),
        (["--datasets", "hub:no-owner"], "datasets: Value error, expected hub:owner/name[:config][@split]"),
        (["--column-mappings", "hub:org/x"], "column_mappings: expected ID=role:column"),
        (["--column-mappings", "hub:org/x=question:q"], "column_mappings.hub:org/x.question: Extra inputs"),
    ],
)
def test_run_refuses_bad_input_with_named_error(args: list[str], expected: str, tmp_path: Path) -> None:
    result = _run("run", "--workspace", str(tmp_path / "ws"), *args)
    assert result.returncode == 2
    assert expected in " ".join(result.stderr.split()), result.stderr
    assert not (tmp_path / "ws" / "report.json").exists()


def test_run_refuses_unwritable_workspace(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _run("run", "--workspace", str(blocker / "ws"))
    assert result.returncode == 2
    assert "workspace:" in result.stderr and "not a writable folder" in result.stderr


def test_run_refuses_corrupt_dataset_naming_file_and_line(tmp_path: Path) -> None:
    dataset = tmp_path / "catalog" / "broken"
    dataset.mkdir(parents=True)
    (dataset / "README.md").write_text("---\nbenchmark: arithmetic\nformat: question-answer\nrows: 2\n---\n# broken\n")
    (dataset / "data.jsonl").write_text('{"question": "1 + 1 =", "answer": "2"}\n{"question": oops\n')
    result = _run("run", "--workspace", str(tmp_path / "ws"), env={"INTERNFLOW_CATALOG": str(tmp_path / "catalog")})
    assert result.returncode == 2
    assert f"{dataset / 'data.jsonl'}:2: invalid JSON" in " ".join(result.stderr.split())


def test_leaderboard_without_a_campaign_says_so(tmp_path: Path) -> None:
    result = _run("leaderboard", "--workspace", str(tmp_path))
    assert result.returncode == 2 and "no report.json" in result.stderr


def test_benchmarks_lists_bundled_tasks() -> None:
    result = _run("benchmarks")
    assert result.returncode == 0
    assert "arithmetic" in result.stdout and "family-mc" in result.stdout


def test_evaluate_scores_a_model_on_a_task_spec_without_training(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "sums.jsonl").write_text('{"q": "1 + 1", "a": 2}\n{"q": "2 + 3", "a": 5}\n{"q": "4 + 4", "a": 8}\n')
    spec = tmp_path / "sums.yaml"
    spec.write_text(
        "name: sums\ndata: sums.jsonl\nprompt_template: '{q} ='\nanswer_field: a\nextraction: number\nmetric: numeric\n"
    )
    workspace = tmp_path / "ws"
    result = _run(
        "evaluate", "--model", str(tiny_model), "--benchmark", str(spec), "--eval-backend", "transformers",
        "-w", str(workspace), env={"INTERNFLOW_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sums (test):" in result.stdout and "n=3" in result.stdout and "answers from transformers" in result.stdout
    assert len((workspace / "eval-samples").glob("evaluate-*.jsonl").__next__().read_text().splitlines()) == 3

    refused = _run("evaluate", "--benchmark", str(tmp_path / "missing.yaml"), "-w", str(workspace))
    assert refused.returncode == 2 and "missing.yaml: cannot read the task spec" in refused.stderr


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """A refusal: exit 2 and one line on stderr, no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def test_run_refuses_a_model_folder_with_a_truncated_config_json_naming_it(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    config = (model / "config.json").read_text()
    (model / "config.json").write_text(config[: len(config) // 2])
    result = _run("run", "--model", str(model), "--planner", "search", "--workspace", str(tmp_path / "ws"))
    assert f"model: {model / 'config.json'}:" in _one_line(result) and "not valid JSON" in result.stderr
    assert not (tmp_path / "ws" / "evaluator.json").exists(), "refused before the flow started"


@pytest.mark.parametrize("offline", [False, True], ids=["hub-unreachable", "offline-mode"])
def test_run_refuses_a_hub_model_it_cannot_get_in_seconds(offline: bool, tmp_path: Path) -> None:
    import time

    from tests.replay_server import unused_port

    with unused_port() as port:
        env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_CACHE": str(tmp_path / "hub-cache")}
        env |= {"INTERNFLOW_OFFLINE": "1"} if offline else {}
        started = time.monotonic()
        result = _run("run", "--model", "someone/no-such-model", "--planner", "search", "-w", str(tmp_path), env=env)
    line = _one_line(result)
    assert line.startswith("error: model: ") and "'someone/no-such-model'" in line
    assert ("offline mode (INTERNFLOW_OFFLINE=1)" if offline else "cannot reach the Hub") in line
    assert time.monotonic() - started < 60, "an unreachable Hub must cost seconds, not minutes"


def _catalog_dataset(root: Path, card: str, data: bytes) -> Path:
    folder = root / "broken"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(card)
    (folder / "data.jsonl").write_bytes(data)
    return folder


def test_run_refuses_a_catalog_card_without_rows_naming_the_card(tmp_path: Path) -> None:
    card = "---\nbenchmark: arithmetic\nformat: question-answer\n---\n# broken\n"
    dataset = _catalog_dataset(tmp_path / "catalog", card, b'{"question": "1 + 1 =", "answer": "2"}\n')
    result = _run("run", "-w", str(tmp_path / "ws"), env={"INTERNFLOW_CATALOG": str(tmp_path / "catalog")})
    assert f"{dataset / 'README.md'}: front matter lacks rows" in _one_line(result)


def test_run_refuses_a_catalog_file_with_invalid_utf8_naming_file_and_line(tmp_path: Path) -> None:
    card = "---\nbenchmark: arithmetic\nformat: question-answer\nrows: 2\n---\n# broken\n"
    rows = b'{"question": "1 + 1 =", "answer": "2"}\n{"question": "caf\xe9", "answer": "3"}\n'
    dataset = _catalog_dataset(tmp_path / "catalog", card, rows)
    result = _run("run", "-w", str(tmp_path / "ws"), env={"INTERNFLOW_CATALOG": str(tmp_path / "catalog")})
    assert f"{dataset / 'data.jsonl'}:2: not UTF-8" in _one_line(result)


def test_evaluate_refuses_a_task_spec_row_that_is_a_list_naming_its_line(tmp_path: Path) -> None:
    (tmp_path / "sums.jsonl").write_text('{"q": "1 + 1", "a": 2}\n["2 + 3", 5]\n')
    spec = tmp_path / "sums.yaml"
    spec.write_text("name: sums\ndata: sums.jsonl\nprompt_template: '{q} ='\nanswer_field: a\n")
    result = _run("evaluate", "--benchmark", str(spec), "-w", str(tmp_path / "ws"))
    assert f"{tmp_path / 'sums.jsonl'}:2: a JSON list; each line must be one object" in _one_line(result)


def test_train_refuses_a_truncated_jsonl_naming_file_and_line(tiny_model: Path, tmp_path: Path) -> None:
    import json

    rows = [
        json.dumps(
            {
                "prompt": [{"role": "user", "content": f"{a} + {a} ="}],
                "completion": [{"role": "assistant", "content": str(2 * a)}],
            }
        )
        for a in range(7)
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(rows)[:-30])  # cut off in the middle of line 7
    result = _run(
        "train", "--recipe", "sft/smoke", "--data", str(data), "--model", str(tiny_model), "-w", str(tmp_path / "ws")
    )
    assert f"{data}:7: invalid JSON" in _one_line(result)
    assert not (tmp_path / "ws" / "checkpoints").exists(), "refused before a child process was started"


def test_train_run_twice_trains_once_and_keeps_the_model(tiny_model: Path, tmp_path: Path) -> None:
    import hashlib
    import json

    rows = [
        {
            "prompt": [{"role": "user", "content": f"{a} + {a} ="}],
            "completion": [{"role": "assistant", "content": str(2 * a)}],
        }
        for a in range(32)
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ("train", "--recipe", "sft/smoke", "--data", str(data), "--model", str(tiny_model), "--max-steps", "4")

    def train() -> tuple[subprocess.CompletedProcess[str], dict, str]:
        done = _run(*args, "-w", str(tmp_path / "ws"))
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout[done.stdout.rindex('{\n  "model_path"') :])
        weights = Path(result["model_path"]) / "model.safetensors"
        return done, result, hashlib.sha256(weights.read_bytes()).hexdigest()

    _, first, trained = train()
    again, second, kept = train()

    assert (first["steps"], second["steps"]) == (4, 4), "a re-run must not train a step more (it gave 4 → 5 → 6)"
    assert "already trained" in " ".join(again.stdout.split())
    assert second["model_path"] == first["model_path"] and kept == trained, "the model must not be replaced"


def test_discover_lists_the_vetted_training_data_of_a_target(tmp_path: Path) -> None:
    result = _run("discover", "--benchmark", "arithmetic", "-w", str(tmp_path), env={"INTERNFLOW_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "arithmetic-direct" in out and "offered" in out and "arithmetic-contaminated" in out
    assert "Hub not searched" in out and "the recipe starts from ['arithmetic-direct']" in out


def test_run_refuses_a_base_model_without_chat_template_naming_it_and_the_fix(tiny_model: Path, tmp_path: Path) -> None:
    from tests.tiny_model import as_base_model

    base = as_base_model(tiny_model, tmp_path / "base-model")
    result = _run("run", "--model", str(base), "--workspace", str(tmp_path / "ws"), env={"INTERNFLOW_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert f"model: {base} has no chat template" in message and "tokenizer.chat_template" in message
    assert "Traceback" not in result.stderr and not (tmp_path / "ws" / "report.json").exists()


def test_a_campaign_failing_after_preflight_writes_report_json_and_exits_1_with_one_line(
    tiny_model: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    result = _run(
        "run", "--model", str(tiny_model), "--workspace", str(workspace), "--planner", "search",
        "--max-iterations", "1", "--eval-endpoint", "http://127.0.0.1:9/v1", env={"INTERNFLOW_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "campaign failed: EvalServerError: eval_endpoint: http://127.0.0.1:9/v1/models" in " ".join(
        result.stderr.split()
    )
    report = json.loads((workspace / "report.json").read_text())
    assert report["failure"].startswith("EvalServerError: eval_endpoint:")
    assert report["stop_reason"] == f"failed: {report['failure']}"
    shown = _run("leaderboard", "--workspace", str(workspace))
    assert shown.returncode == 2 and "the campaign failed before its baseline: EvalServerError" in shown.stderr


def _processes_with(argument: str) -> list[int]:
    """Pids whose command line holds `argument` as one of its words."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if argument.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_sigterm_to_ui_stops_the_prefect_server_it_started(tmp_path: Path) -> None:
    """Regression: SIGTERM to `internflow ui` left its Prefect server running on the port."""
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    ui = subprocess.Popen(
        [sys.executable, "-m", "internflow.deployments.cli", "ui", "-w", str(tmp_path / "ws"), "--port", str(port)],
        env=env | {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                assert ui.poll() is None, "internflow ui exited before its server came up"
                time.sleep(1)
        assert _processes_with(str(port)), "the server runs with its port on its command line"
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=30)
        deadline = time.monotonic() + 40  # the watchdog polls twice a second, then allows 15 s of grace
        while _processes_with(str(port)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _processes_with(str(port)), "a server process outlived `internflow ui`"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
    finally:
        if ui.poll() is None:
            ui.kill()
        for pid in _processes_with(str(port)):
            os.kill(pid, signal.SIGKILL)
