"""Evaluation through lighteval with a real vLLM server (the CPU build, from `.venv-vllm`) on the
tiny head_dim-64 model: the same greedy answers and scores as the transformers backend, LoRA
adapters hot-loaded into the running server, and no server process outliving its owner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect import flow

from internflow.evaluation.server import EvalServerError, ServerSettings, VLLMServer
from internflow.schemas import EvalRequest, EvalResult, ServedModel
from internflow.tasks.evaluate import evaluate_model

pytestmark = pytest.mark.slow


def _vllm_pids(marker: str) -> list[int]:
    """Processes of a vLLM server whose command line names `marker` (engine cores are named
    VLLM::EngineCore but keep no arguments, so they are found through the server's session)."""
    pids, sessions = [], set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "vllm.entrypoints" in cmdline and marker in cmdline:
            pids.append(int(entry))
            if "internflow.evaluation.watchdog" not in cmdline:  # the watchdog shares its starter's session
                sessions.add(os.getsid(int(entry)))
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in pids:
            try:
                if os.getsid(int(entry)) in sessions:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _wait_gone(marker: str, timeout_s: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := _vllm_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _copy_model(source: Path, target: Path) -> Path:
    target.mkdir()
    for path in source.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
    return target


# A user's shell holds keys for other services; a server for a local model has no use for any of them.
SECRETS = {"HF_TOKEN": "hf_test_token_not_for_children", "OPENAI_API_KEY": "sk-test-key-not-for-children"}


@pytest.fixture(scope="module")
def tiny_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    # float32: the transformers backend's numerics, so the two must give the same greedy answers.
    settings = ServerSettings(dtype="float32")
    server = VLLMServer(str(tiny_model), tmp_path_factory.mktemp("vllm-logs"), settings)
    with pytest.MonkeyPatch.context() as shell:
        for name, value in SECRETS.items():
            shell.setenv(name, value)
        server.start()
    with server:
        yield server
    assert _wait_gone(str(tiny_model), 30) == []


def test_the_server_processes_get_no_credentials_they_do_not_need(tiny_server: VLLMServer, tiny_model: Path) -> None:
    environs = {pid: Path(f"/proc/{pid}/environ").read_bytes() for pid in _vllm_pids(str(tiny_model))}
    assert any(b"VLLM_SERVER_DEV_MODE=1" in env for env in environs.values()), "the server's processes were not found"
    for pid, environ in environs.items():
        for name, value in SECRETS.items():
            assert value.encode() not in environ, f"{name} reached vLLM process {pid}"


@flow
def _evaluate(model: str, fingerprint: str, samples: Path, backend: str, served: ServedModel | None, adapter=None):
    return evaluate_model(
        EvalRequest(model_path=model, model_fingerprint=fingerprint, benchmark="arithmetic", limit=40, seed=0,
                    label=f"check-{backend}", samples_dir=samples, backend=backend, server=served, adapter=adapter)
    )  # fmt: skip


def _rows(result: EvalResult) -> list[dict]:
    return [json.loads(line) for line in Path(result.samples_path).read_text().splitlines()]


def test_vllm_served_eval_gives_the_transformers_backends_answers_and_scores(
    prefect_harness, tiny_server: VLLMServer, tiny_model: Path, tmp_path: Path
) -> None:
    served = _evaluate(str(tiny_model), "tiny", tmp_path, "vllm", tiny_server.served())
    in_process = _evaluate(str(tiny_model), "tiny", tmp_path, "transformers", None)

    assert (served.backend, in_process.backend) == ("vllm", "transformers")
    vllm_rows, hf_rows = _rows(served), _rows(in_process)
    assert [r["id"] for r in vllm_rows] == [r["id"] for r in hf_rows] and len(vllm_rows) == 40
    assert [r["output"] for r in vllm_rows] == [r["output"] for r in hf_rows]
    assert all(r["output"] for r in vllm_rows)  # real generations, not empty answers
    assert [(r["extracted"], r["correct"]) for r in vllm_rows] == [(r["extracted"], r["correct"]) for r in hf_rows]
    assert (served.accuracy, served.n, served.ci_low, served.ci_high) == (
        in_process.accuracy,
        in_process.n,
        in_process.ci_low,
        in_process.ci_high,
    )


def test_a_users_own_endpoint_is_used_as_given(
    prefect_harness, tiny_server: VLLMServer, tiny_model: Path, tmp_path: Path
) -> None:
    from internflow.evaluation.run import eval_server

    logs = tmp_path / "logs"
    with eval_server("vllm", str(tiny_model), tiny_server.base_url, logs) as served:
        ours = tiny_server.served()
        assert (served.base_url, served.model, served.model_path) == (ours.base_url, ours.model, ours.model_path)
        assert not served.reload_weights  # a user's server: adapters may be loaded, weights never replaced
        result = _evaluate(str(tiny_model), "tiny", tmp_path, "vllm", served)
    assert result.n == 40 and not logs.exists()  # nothing was started here

    unreachable = eval_server("vllm", str(tiny_model), "http://127.0.0.1:9/v1", logs)
    with pytest.raises(EvalServerError, match="eval_endpoint: http://127.0.0.1:9/v1/models"), unreachable:
        pass


@pytest.mark.parametrize("swap", ["adapter hot-loaded", "weights reloaded in place"])
def test_a_fine_tune_is_evaluated_on_the_running_server(
    prefect_harness, tiny_server: VLLMServer, tiny_model: Path, tmp_path: Path, swap: str
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(7)
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False),
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    peft_model.merge_and_unload().save_pretrained(tmp_path / "merged")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "merged")
    logs_before = set(tiny_server.log_dir.iterdir())

    served = tiny_server.served().model_copy(update={"hot_load_adapters": swap == "adapter hot-loaded"})
    adapted = _evaluate(
        str(tmp_path / "merged"), "lora-a", tmp_path, "vllm", served, (str(tmp_path / "adapter"), str(tiny_model))
    )
    again = _evaluate(str(tiny_model), "tiny-again", tmp_path, "vllm", served)  # the base model's weights are back
    merged = _evaluate(str(tmp_path / "merged"), "lora-a", tmp_path, "transformers", None)
    base = _evaluate(str(tiny_model), "tiny", tmp_path, "transformers", None)

    assert set(tiny_server.log_dir.iterdir()) == logs_before  # no second server was started
    assert [r["output"] for r in _rows(adapted)] == [r["output"] for r in _rows(merged)]
    assert [r["output"] for r in _rows(adapted)] != [r["output"] for r in _rows(base)]  # the fine-tune took effect
    assert [r["output"] for r in _rows(again)] == [r["output"] for r in _rows(base)]


def test_a_fine_tune_whose_tied_embeddings_changed_is_scored_as_itself_not_with_the_old_output_layer(
    prefect_harness, tiny_server: VLLMServer, tiny_model: Path, tmp_path: Path
) -> None:
    """Regression: vLLM's CPU build reloads embeddings in place but keeps the old tied output layer,
    so a full fine-tune of a tied model (SmolLM2) was scored as neither itself nor the base model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from internflow.evaluation.run import campaign_server_for

    torch.manual_seed(11)
    tuned = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert tuned.config.tie_word_embeddings
    with torch.no_grad():  # what a full fine-tune does to a tied model: its embeddings (= its head) move
        tuned.get_input_embeddings().weight.add_(0.5 * torch.randn_like(tuned.get_input_embeddings().weight))
    tuned.save_pretrained(tmp_path / "tuned")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "tuned")

    assert campaign_server_for(tiny_server.served(), str(tmp_path / "tuned"), "tuned", None) is None
    served = _evaluate(str(tmp_path / "tuned"), "tuned", tmp_path, "vllm", tiny_server.served())
    in_process = _evaluate(str(tmp_path / "tuned"), "tuned", tmp_path, "transformers", None)
    assert [r["output"] for r in _rows(served)] == [r["output"] for r in _rows(in_process)]


def test_a_server_that_cannot_start_says_why_and_leaves_no_process(tiny_model: Path, tmp_path: Path) -> None:
    broken = _copy_model(tiny_model, tmp_path / "broken-model")
    (broken / "model.safetensors").write_bytes(b"not safetensors")

    with pytest.raises(EvalServerError, match="exited during start-up") as refused:
        VLLMServer(str(broken), tmp_path / "logs").start()
    assert str(broken) in str(refused.value) and "vllm-" in str(refused.value)
    assert _wait_gone(str(broken), 30) == []


def test_killing_the_campaign_during_an_eval_leaves_no_vllm_process(tiny_model: Path, tmp_path: Path) -> None:
    # Its own path: the module's server must not count as a leftover.
    tiny_model = _copy_model(tiny_model, tmp_path / "tiny-for-kill")
    workspace = tmp_path / "ws"
    campaign = subprocess.Popen(
        [str(Path(sys.executable).parent / "internflow"), "run", "--model", str(tiny_model), "--workspace",
         str(workspace), "--recipe", "sft/smoke", "--planner", "search", "--max-iterations", "1"],
        env=os.environ | {"INTERNFLOW_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not _vllm_pids(str(tiny_model)) and campaign.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _vllm_pids(str(tiny_model)), "the campaign never started its vLLM server"
        time.sleep(3)  # let it load the model: the engine core processes exist now
        campaign.send_signal(signal.SIGKILL)  # no finally, no atexit: only the watchdog can clean up
        campaign.wait()
    finally:
        if campaign.poll() is None:
            campaign.kill()
    assert _wait_gone(str(tiny_model), 60) == []


def test_a_prompt_longer_than_the_context_is_marked_over_length_on_vllm_as_on_transformers(
    prefect_harness, tiny_server: VLLMServer, tiny_model: Path, tmp_path: Path
) -> None:
    from tests.test_evaluate import check_over_length, over_length_spec

    spec = str(over_length_spec(tmp_path / "spec"))

    @flow
    def evaluate(backend: str, served: ServedModel | None) -> EvalResult:
        return evaluate_model(
            EvalRequest(model_path=str(tiny_model), model_fingerprint="tiny", benchmark=spec, limit=None, seed=0,
                        label=f"long-{backend}", samples_dir=tmp_path, backend=backend, server=served)  # type: ignore[arg-type]
        )  # fmt: skip

    served = check_over_length(evaluate("vllm", tiny_server.served()), tiny_model)
    in_process = check_over_length(evaluate("transformers", None), tiny_model)
    assert [(r["output"], r["over_length"]) for r in served] == [(r["output"], r["over_length"]) for r in in_process]
