"""The Hugging Face Jobs backend against the loopback replay server: the job spec built from a
recipe, submission, status polling, log streaming, timeout and cancel — through huggingface_hub's
own jobs client (HfApi.run_job / inspect_job / fetch_job_logs / cancel_job)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from internflow.execution import TrainingFailed, UnknownBackendError, get_backend
from internflow.execution.hf_jobs import HFJobs, HFJobsSettings, build_job_spec
from internflow.recipes import load_recipe
from internflow.schemas import PreparedDataset, TrainRequest
from tests.replay_server import Recording, ReplayServer

NAMESPACE = "internflow-test"
JOB = "6900aa11bb22cc33dd44ee55"
JOB_PATH = f"/api/jobs/{NAMESPACE}/{JOB}"
SSE = {"Content-Type": "text/event-stream"}


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text('{"prompt": [{"role": "user", "content": "2 + 3 ="}], "answer": "5"}\n')
    return path


@pytest.fixture
def jobs_server() -> Iterator[ReplayServer]:
    """The Hub's jobs API, replayed on 127.0.0.1 (routes added per test)."""
    with ReplayServer() as server:
        yield server


def _request(
    init_model: str = "HuggingFaceTB/SmolLM2-135M-Instruct", data_path: str = "/ws/data/abc/train.jsonl"
) -> TrainRequest:
    data = PreparedDataset(path=data_path, rows=320, sources=(), fingerprint="abc")
    return TrainRequest(
        init_model=init_model,
        init_fingerprint="base",
        data=data,
        params=load_recipe("smollm2-135m", "grpo/default", ("arithmetic-prompts",)),
        checkpoint_dir="/ws/checkpoints/grpo-abc",
        model_dir="/ws/models/grpo-abc",
        trackio_dir="/ws/trackio",
        trackio_project="internflow",
        run_name="grpo-abc",
        backend="hf-jobs",
    )


def _settings(server: ReplayServer, **overrides: object) -> HFJobsSettings:
    values = {
        "namespace": NAMESPACE,
        "data_repo": "internflow-test/prepared-data",
        "output_repo": "internflow-test/arith-grpo",
        "endpoint": server.url,
        "token": "hf_test_token",
        "poll_s": 0.01,
    } | overrides
    return HFJobsSettings.model_validate(values)


def _serve(server: ReplayServer, final_stage: str, final_logs: str, polls_running: int = 2) -> None:
    data_api = "/api/datasets/internflow-test/prepared-data"
    server.add_route(f"{data_api}/preupload", Recording.from_file("hf_jobs/preupload.json"))
    server.add_route(f"{data_api}/commit", Recording.from_file("hf_jobs/commit.json"))
    server.add_route(f"/api/jobs/{NAMESPACE}", Recording.from_file("hf_jobs/job_scheduling.json"))
    server.add_route(JOB_PATH, Recording.from_file(f"hf_jobs/job_{final_stage}.json"))
    server.add_route(f"{JOB_PATH}/logs", Recording.from_file(f"hf_jobs/{final_logs}", headers=SSE))
    server.add_route(f"{JOB_PATH}/cancel", Recording.from_file("hf_jobs/cancel.json"))
    server.inject(JOB_PATH, [Recording.from_file("hf_jobs/job_running.json")] * polls_running)
    server.inject(f"{JOB_PATH}/logs", [Recording.from_file("hf_jobs/logs_started.sse", headers=SSE)] * polls_running)


def test_job_spec_is_built_from_the_recipe_with_paths_on_the_jobs_disk() -> None:
    settings = HFJobsSettings(namespace=NAMESPACE, data_repo="me/data", output_repo="me/out", flavor="l4x1")
    spec = build_job_spec(_request(), settings, token="hf_secret")

    remote = TrainRequest.model_validate_json(spec.env["INTERNFLOW_REQUEST"])
    assert remote.params == _request().params and remote.params.method == "grpo"
    assert remote.data.path == "/job/data/grpo-abc/train.jsonl" and remote.backend == "local"
    assert remote.model_dir == "/job/model" and remote.init_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    script = spec.command[-1]
    assert "python -m internflow.training /job/request.json" in script
    assert "hf download me/data grpo-abc/train.jsonl --repo-type dataset" in script
    assert "hf upload me/out /job/model" in script
    assert (spec.flavor, spec.secrets, spec.labels["method"]) == ("l4x1", {"HF_TOKEN": "hf_secret"}, "grpo")


def test_a_local_model_folder_cannot_run_on_hf_jobs(tmp_path: Path) -> None:
    settings = HFJobsSettings(namespace=NAMESPACE, data_repo="me/data", output_repo="me/out")
    with pytest.raises(ValueError, match="init_model: .* is not a Hub model id"):
        build_job_spec(_request(str(tmp_path)), settings)


def test_submit_poll_stream_logs_and_read_the_result(jobs_server: ReplayServer, rows: Path) -> None:
    _serve(jobs_server, "completed", "logs_completed.sse")
    lines: list[str] = []

    result = HFJobs(_settings(jobs_server)).run(_request(data_path=str(rows)), lines.append)

    upload, commit, submitted = [r for r in jobs_server.requests if r.method == "POST"]
    assert upload.path.endswith("/preupload/main") and commit.path.endswith("/commit/main")
    assert base64.b64encode(rows.read_bytes()).decode() in commit.body.decode(), "the data goes up first"
    assert '"path": "grpo-abc/train.jsonl"' in commit.body.decode()
    assert submitted.path == f"/api/jobs/{NAMESPACE}"
    assert submitted.headers["authorization"] == "Bearer hf_test_token"
    body = json.loads(submitted.body)
    assert body["flavor"] == "a10g-small" and body["timeoutSeconds"] == 6 * 3600
    assert body["secrets"] == {"HF_TOKEN": "hf_test_token"}
    assert TrainRequest.model_validate_json(body["environment"]["INTERNFLOW_REQUEST"]).run_name == "grpo-abc"
    assert len([r for r in jobs_server.requests if r.path == JOB_PATH]) == 3, "polled until COMPLETED"

    assert lines[0].startswith(f"hf-jobs: submitted {JOB} on a10g-small")
    streamed = lines[1:]
    assert len(streamed) == len(set(streamed)) == 7, "every log line forwarded exactly once"
    assert streamed[0] == "Successfully installed internflow" and "Uploading model" in streamed[-1]
    assert result.model_path == "internflow-test/arith-grpo"
    assert (result.steps, result.final_loss) == (2, 1.87)
    assert not jobs_server.requests_to(f"{JOB_PATH}/cancel")


def test_a_failed_job_reports_its_stage_message_and_log_tail(jobs_server: ReplayServer, rows: Path) -> None:
    _serve(jobs_server, "error", "logs_error.sse", polls_running=1)
    with pytest.raises(TrainingFailed, match=r"ended ERROR: Job failed with exit code: 1(.|\n)*CUDA out of memory"):
        HFJobs(_settings(jobs_server)).run(_request(data_path=str(rows)), lambda line: None)


def test_a_job_past_its_timeout_is_cancelled(jobs_server: ReplayServer, rows: Path) -> None:
    _serve(jobs_server, "running", "logs_started.sse")
    with pytest.raises(TrainingFailed, match="ran past 1s and was cancelled"):
        HFJobs(_settings(jobs_server, timeout_s=1, poll_s=0.2)).run(_request(data_path=str(rows)), lambda line: None)
    (cancel,) = jobs_server.requests_to(f"{JOB_PATH}/cancel")
    assert cancel.method == "POST"


class _Interrupted(BaseException):
    pass


def test_an_interrupted_run_cancels_its_job(jobs_server: ReplayServer, rows: Path) -> None:
    _serve(jobs_server, "running", "logs_started.sse")

    def interrupt(line: str) -> None:
        if not line.startswith("hf-jobs:"):
            raise _Interrupted

    with pytest.raises(_Interrupted):
        HFJobs(_settings(jobs_server)).run(_request(data_path=str(rows)), interrupt)
    assert len(jobs_server.requests_to(f"{JOB_PATH}/cancel")) == 1


def test_backend_registry_and_settings_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownBackendError, match="known: hf-jobs, local"):
        get_backend("slurm")
    for name in ("NAMESPACE", "DATA_REPO", "OUTPUT_REPO"):
        monkeypatch.delenv(f"INTERNFLOW_HF_JOBS_{name}", raising=False)
    with pytest.raises(ValueError, match="INTERNFLOW_HF_JOBS_NAMESPACE: Field required"):
        get_backend("hf-jobs")
    monkeypatch.setenv("INTERNFLOW_HF_JOBS_NAMESPACE", "me")
    monkeypatch.setenv("INTERNFLOW_HF_JOBS_DATA_REPO", "me/data")
    monkeypatch.setenv("INTERNFLOW_HF_JOBS_OUTPUT_REPO", "me/out")
    monkeypatch.setenv("INTERNFLOW_HF_JOBS_FLAVOR", "a100-large")
    assert isinstance(get_backend("hf-jobs"), HFJobs)


def test_hourly_price_comes_from_the_hubs_hardware_list(jobs_server: ReplayServer) -> None:
    from huggingface_hub import HfApi

    from internflow.agent.budget import estimate_job, hf_jobs_hourly_usd

    jobs_server.add_route("/api/jobs/hardware", Recording.from_file("hf_jobs/hardware.json"))
    api = HfApi(endpoint=jobs_server.url, token="hf_test_token")
    price = hf_jobs_hourly_usd("a10g-small", api)
    assert price == pytest.approx(0.016667 * 60)
    assert estimate_job(1800.0, "a10g-small", price).usd == pytest.approx(0.5, rel=1e-3)
    with pytest.raises(ValueError, match="unknown HF Jobs hardware 'h9000'; known: cpu-basic, a10g-small"):
        hf_jobs_hourly_usd("h9000", api)


def test_a_job_cancelled_elsewhere_fails_the_run_with_the_hubs_message(jobs_server: ReplayServer, rows: Path) -> None:
    _serve(jobs_server, "canceled", "logs_started.sse", polls_running=1)
    with pytest.raises(TrainingFailed, match="ended CANCELED: Job canceled by user"):
        HFJobs(_settings(jobs_server)).run(_request(data_path=str(rows)), lambda line: None)
    assert not jobs_server.requests_to(f"{JOB_PATH}/cancel"), "nothing left to cancel"
