"""Hugging Face Jobs backend: the same training request, run on Hub hardware.

We upload the prepared training data to a Hub dataset repo; the job installs internflow, fetches
that data, runs
`python -m internflow.training` on the request (passed in the job's environment, its paths
rewritten to the job's disk) and uploads the trained model to a Hub model repo.  Here we submit
it with `HfApi.run_job`, poll `inspect_job`, stream new `fetch_job_logs` lines back, cancel it
with `cancel_job` when it overruns its timeout or when we are interrupted, and read the
`TrainResult` from the line the training process prints last.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from internflow.execution.errors import TrainingFailed
from internflow.schemas import TrainRequest, TrainResult
from internflow.training import RESULT_MARKER

__all__ = ["HFJobs", "HFJobsSettings", "JobSubmission", "build_job_spec"]

_JOB_ROOT = "/job"
_TERMINAL = ("COMPLETED", "CANCELED", "ERROR", "DELETED")


class HFJobsSettings(BaseModel):
    """Where and how jobs run; `from_env` reads `INTERNFLOW_HF_JOBS_<FIELD>` variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(min_length=1, description="User or organisation the jobs run under.")
    data_repo: str = Field(description="Hub dataset repo holding prepared data at <run_name>/train.jsonl.")
    output_repo: str = Field(description="Hub model repo the trained model is uploaded to.")
    flavor: str = Field("a10g-small", description="Hardware flavor (huggingface_hub.JobHardware).")
    image: str = Field("pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime", description="Docker image.")
    package: str = Field("internflow", description="pip requirement that installs internflow in the job.")
    timeout_s: int = Field(6 * 3600, ge=1, description="Wall-clock limit; the job is cancelled past it.")
    poll_s: float = Field(15.0, gt=0, description="Seconds between status polls.")
    endpoint: str | None = Field(None, description="Hub endpoint (default: huggingface_hub's).")
    token: str | None = Field(None, description="Hub token (default: the locally saved one).")

    @classmethod
    def from_env(cls) -> HFJobsSettings:
        prefix = "INTERNFLOW_HF_JOBS_"
        values = {k[len(prefix) :].lower(): v for k, v in os.environ.items() if k.startswith(prefix)}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(f"{prefix}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
            raise ValueError(f"hf-jobs backend settings: {problems}") from None


class JobSubmission(BaseModel):
    """Keyword arguments for `HfApi.run_job`, built from a request and the settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str
    command: list[str]
    env: dict[str, str]
    secrets: dict[str, str]
    flavor: str
    timeout: int
    namespace: str
    labels: dict[str, str]


def build_job_spec(request: TrainRequest, settings: HFJobsSettings, token: str | None = None) -> JobSubmission:
    """The job for `request`: its paths moved to the job's disk, the same parameters."""
    if Path(request.init_model).exists() or request.init_model.count("/") != 1:
        raise ValueError(
            f"init_model: {request.init_model!r} is not a Hub model id (owner/name); a Hugging Face Job "
            "cannot read local folders, so push the model to the Hub first"
        )
    remote = request.model_copy(
        update={
            "data": request.data.model_copy(update={"path": f"{_JOB_ROOT}/data/{request.run_name}/train.jsonl"}),
            "checkpoint_dir": f"{_JOB_ROOT}/checkpoints",
            "model_dir": f"{_JOB_ROOT}/model",
            "trackio_dir": f"{_JOB_ROOT}/trackio",
            "backend": "local",
        }
    )
    script = " && ".join(
        [
            "set -e",
            f"pip install -q {shlex.quote(settings.package)}",
            f"hf download {shlex.quote(settings.data_repo)} {shlex.quote(request.run_name)}/train.jsonl "
            f"--repo-type dataset --local-dir {_JOB_ROOT}/data",
            f"printenv INTERNFLOW_REQUEST > {_JOB_ROOT}/request.json",
            f"python -m internflow.training {_JOB_ROOT}/request.json",
            f"hf upload {shlex.quote(settings.output_repo)} {_JOB_ROOT}/model .",
        ]
    )
    return JobSubmission(
        image=settings.image,
        command=["bash", "-c", script],
        env={"INTERNFLOW_REQUEST": remote.model_dump_json(), "TRACKIO_DIR": remote.trackio_dir, "TQDM_DISABLE": "1"},
        secrets={"HF_TOKEN": token} if token else {},
        flavor=settings.flavor,
        timeout=settings.timeout_s,
        namespace=settings.namespace,
        labels={"internflow-run": request.run_name, "method": request.params.method},
    )


class HFJobs:
    def __init__(self, settings: HFJobsSettings) -> None:
        self.settings = settings

    def run(self, request: TrainRequest, log: Callable[[str], None]) -> TrainResult:
        from huggingface_hub import HfApi, get_token

        settings = self.settings
        api = HfApi(endpoint=settings.endpoint, token=settings.token)
        spec = build_job_spec(request, settings, token=settings.token or get_token())
        api.upload_file(
            path_or_fileobj=request.data.path,
            path_in_repo=f"{request.run_name}/train.jsonl",
            repo_id=settings.data_repo,
            repo_type="dataset",
            commit_message=f"internflow: training data for {request.run_name}",
        )
        job = api.run_job(**spec.model_dump())
        log(f"hf-jobs: submitted {job.id} on {settings.flavor}: {job.url}")
        lines: list[str] = []
        deadline = time.monotonic() + settings.timeout_s
        try:
            while True:
                info = api.inspect_job(job_id=job.id, namespace=settings.namespace)
                # Non-following fetches replay the whole log: forward only the lines not seen yet.
                logs = list(api.fetch_job_logs(job_id=job.id, namespace=settings.namespace))
                for line in logs[len(lines) :]:
                    log(line)
                lines = logs
                if info.status.stage in _TERMINAL:
                    break
                if time.monotonic() > deadline:
                    api.cancel_job(job_id=job.id, namespace=settings.namespace)
                    raise TrainingFailed(f"hf-jobs: job {job.id} ran past {settings.timeout_s}s and was cancelled")
                time.sleep(settings.poll_s)
        except TrainingFailed:
            raise
        except BaseException:
            # Interrupted (flow cancelled, Ctrl-C, lost connection): don't leave paid hardware running.
            api.cancel_job(job_id=job.id, namespace=settings.namespace)
            raise
        if info.status.stage != "COMPLETED":
            tail = "\n".join(lines[-40:])
            raise TrainingFailed(
                f"hf-jobs: job {job.id} ended {info.status.stage}: {info.status.message or ''}; last output:\n{tail}"
            )
        results = [line[len(RESULT_MARKER) :] for line in lines if line.startswith(RESULT_MARKER)]
        if not results:
            raise TrainingFailed(f"hf-jobs: job {job.id} completed without printing its result line")
        result = TrainResult.model_validate(json.loads(results[-1]))
        return result.model_copy(update={"model_path": settings.output_repo, "checkpoint_dir": job.url})
