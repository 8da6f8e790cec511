"""The diagnose stage reads a run's curves back from a real trackio folder (written by trackio
itself, in a child process the way the training child writes it) and finds what they show."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect import flow

from internflow.diagnostics.run import DiagnoseRequest
from internflow.diagnostics.trackio_metrics import read_run_metrics
from internflow.schemas import Diagnosis, EvalResult, LossPoint, TrainResult
from internflow.tasks.diagnose import diagnose_iteration
from tests.test_detectors import REAL_SAMPLES, recorded

_WRITE = """
import json, sys, trackio
project, run, path = sys.argv[1:]
metrics = json.loads(open(path).read())
steps = sorted({step for points in metrics.values() for step, _ in points})
trackio.init(project=project, name=run)
for step in steps:
    trackio.log({name: value for name, points in metrics.items() for s, value in points if s == step}, step=step)
trackio.finish()
"""


def write_trackio(folder: Path, project: str, run: str, metrics: dict) -> None:
    source = folder.parent / f"{run}-metrics.json"
    source.write_text(json.dumps(metrics))
    env = os.environ | {"TRACKIO_DIR": str(folder)}
    subprocess.run([sys.executable, "-c", _WRITE, project, run, str(source)], env=env, check=True, timeout=120)


@pytest.fixture(scope="module")
def trackio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ws") / "trackio"
    write_trackio(folder, "internflow", "grpo-collapsed", recorded("grpo_reward_collapse"))
    write_trackio(folder, "internflow", "sft-nan", recorded("sft_nan"))
    return folder


def test_curves_read_back_as_logged_nan_included(trackio_dir: Path) -> None:
    grpo = read_run_metrics(trackio_dir, "internflow", "grpo-collapsed")
    assert grpo["train/reward_std"] == recorded("grpo_reward_collapse")["train/reward_std"]
    assert set(recorded("grpo_reward_collapse")) <= set(grpo)
    nan = dict(read_run_metrics(trackio_dir, "internflow", "sft-nan")["train/loss"])
    assert math.isfinite(nan[17]) and math.isnan(nan[18])


def test_an_absent_run_project_or_folder_reads_as_no_metrics(trackio_dir: Path, tmp_path: Path) -> None:
    assert read_run_metrics(trackio_dir, "internflow", "never-ran") == {}
    assert read_run_metrics(trackio_dir, "other-project", "grpo-collapsed") == {}
    assert read_run_metrics(tmp_path / "missing", "internflow", "grpo-collapsed") == {}


def _eval(n_correct: int, label: str, samples_path: str = "absent.jsonl") -> EvalResult:
    return EvalResult(
        label=label, benchmark="arithmetic", accuracy=n_correct / 200, n=200, n_correct=n_correct,
        ci_low=0.0, ci_high=1.0, unparseable=0, samples_path=samples_path, runtime_s=1.0,
    )  # fmt: skip


def _grpo_result() -> TrainResult:
    # What the TrainResult itself carries for GRPO: loss and mean reward, not the reward spread.
    curves = recorded("grpo_reward_collapse")
    return TrainResult(
        model_path="model", steps=60, final_loss=curves["train/loss"][-1][1], runtime_s=1.0,
        losses=tuple(LossPoint(step=s, loss=v) for s, v in curves["train/loss"]),
        rewards=tuple(LossPoint(step=s, loss=v) for s, v in curves["train/reward"]),
        trackio_project="internflow", trackio_run="grpo-collapsed", checkpoint_dir="ckpt",
    )  # fmt: skip


@flow
def _diagnose_with_and_without_trackio(trackio_dir: str) -> list[Diagnosis]:
    evaluation, baseline = _eval(52, "iteration", str(REAL_SAMPLES)), _eval(51, "baseline")
    request = DiagnoseRequest(train=_grpo_result(), evaluation=evaluation, baseline=baseline)
    return [
        diagnose_iteration(request.model_copy(update={"trackio_dir": trackio_dir})),
        diagnose_iteration(request),
    ]


def test_the_stage_finds_reward_collapse_only_trackio_can_show(prefect_harness, trackio_dir: Path) -> None:
    with_trackio, without = _diagnose_with_and_without_trackio(str(trackio_dir))
    assert [f.kind for f in with_trackio.findings] == ["reward_collapse", "no_change"]
    assert with_trackio.findings[0].detector == "reward_collapse"
    assert with_trackio.verdict == without.verdict == "no_change"
    assert [f.kind for f in without.findings] == ["no_change"]
