"""`internflow run` on targets that bring no bundled data: GSM8K against a local Hub (discovers,
vets and trains on Hub datasets, blocks the contaminated one, skips the gated one) and a user's
task spec with and without `train_data:` — the CLI as a user runs it, in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub_data import gsm_items, hub_repos
from tests.local_hub import LocalHub

ROOT = Path(__file__).resolve().parents[1]
# Literature needs arXiv and Semantic Scholar, which a Hub mirror does not serve: off, said so.
NO_LITERATURE = {"INTERNFLOW_OFFLINE_SERVICES": "arxiv,semantic-scholar,paper-html"}


@pytest.fixture(scope="module")
def gsm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random model, with a tokenizer that has seen word problems (fewer tokens each)."""
    from tests.tiny_model import build_tiny_model

    corpus = [i["question"] + " " + i["answer"] for i in gsm_items(2002, 600)]
    return build_tiny_model(tmp_path_factory.mktemp("gsm-model"), corpus=corpus, max_positions=2048, vocab_size=4096)


def _run(args: list[str], workspace: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE")}
    env |= NO_LITERATURE | {"PYTHONPATH": str(ROOT)} | (extra_env or {})
    command = [sys.executable, "-m", "internflow.deployments.cli", "run", "--workspace", str(workspace),
               "--planner", "search", "--time-budget-minutes", "30", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=1500, cwd=ROOT)


@pytest.mark.slow
def test_run_gsm8k_discovers_vets_and_trains_on_hub_datasets(
    local_hub: LocalHub, gsm_model: Path, tmp_path: Path
) -> None:
    for repo in hub_repos():
        local_hub.add(repo)

    done = _run(
        ["--model", str(gsm_model), "--benchmark", "gsm8k", "--recipe", "sft/smoke", "--max-iterations", "2",
         "--eval-limit", "none", "--hub-datasets", "6"],  # answers from a vLLM server: 512 new tokens per item
        tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    used = {s["name"] for it in report["iterations"] for s in it["data"]["sources"] if s["rows_used"]}
    assert used and all(name.startswith("hub:") for name in used)
    assert "hub:example/gsm8k-contaminated:default@train" not in used
    assert report["baseline"]["n"] == 200 and len(report["iterations"]) == 2
    assert "best on dev:" in done.stdout and "gsm8k leaderboard" in done.stdout and "test split:" in done.stdout
    candidates = json.loads(next((tmp_path / "data").glob("discovery-gsm8k-*.json")).read_text())
    states = {s["id"]: s["status"] for s in candidates["sources"]}
    assert states["hub:example/gsm8k-gated@train"] == "gated"
    assert any("example/gsm8k-gated" in note and "HF_TOKEN" in note for note in candidates["notes"])


def _parity_spec(folder: Path, train: bool) -> Path:
    """A task no bundled data covers: 'is N even or odd?', answered in one word."""
    rows = [{"n": n, "parity": "even" if n % 2 == 0 else "odd"} for n in range(1000, 1600)]
    test, train_rows = rows[::10], [r for i, r in enumerate(rows) if i % 10]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    dev = [{"n": n, "parity": "even" if n % 2 == 0 else "odd"} for n in range(2000, 2060)]
    (folder / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    spec = folder / "parity.yaml"
    spec.write_text(
        "name: parity\ndata: test.jsonl\nprompt_template: 'Is {n} even or odd? Answer with one word.'\n"
        "answer_field: parity\nextraction: regex:(even|odd)\nmetric: exact\nmax_new_tokens: 4\n"
        "description: parity of integers\n" + ("train_data: train.jsonl\n" if train else "dev_data: dev.jsonl\n")
    )
    return spec


@pytest.mark.slow
def test_run_on_a_task_spec_with_train_data_trains_and_improves(tiny_model: Path, tmp_path: Path) -> None:
    spec = _parity_spec(tmp_path, train=True)

    done = _run(
        ["--model", str(tiny_model), "--benchmark", str(spec), "--recipe", "sft/smoke", "--max-iterations", "2",
         "--eval-limit", "none", "--eval-backend", "transformers"],
        tmp_path / "ws",
        {"INTERNFLOW_OFFLINE": "1"},
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "ws" / "report.json").read_text())
    assert report["iterations"][0]["data"]["sources"][0]["name"] == "task:parity:train"
    assert report["best_score"] > report["baseline"]["accuracy"] + 0.2, (report["baseline"], report["best_score"])


@pytest.mark.slow
def test_run_on_a_task_spec_without_train_data_runs_discovery(
    local_hub: LocalHub, tiny_model: Path, tmp_path: Path
) -> None:
    spec = _parity_spec(tmp_path, train=False)

    refused = _run(
        ["--model", str(tiny_model), "--benchmark", str(spec), "--eval-backend", "transformers"], tmp_path / "ws"
    )

    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "no usable training data for 'parity'" in refused.stderr and "queries ['parity'" in refused.stderr
    assert [r.query.get("search") for r in local_hub.requests_of("search")][:1] == [["parity"]]
