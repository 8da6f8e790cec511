"""Train → evaluate → publish as one transaction: a new best is published (the workspace's best
pointer moved, the model pushed to a Hub branch) and stands only if the publish gate passes; a
blocked gate or a changed evaluator rolls both back.  The Hub is a local replay server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internflow.best import BestPointer, read_pointer, write_pointer
from internflow.schemas import (
    Diagnosis,
    EvalResult,
    IterationContext,
    PreparedDataset,
    TrainResult,
)
from tests.replay_server import Recording, ReplayServer

REPO = "internflow-test/arith-best"
RUN = "sft-0123456789ab"


def _eval(accuracy: float, label: str = "iteration-2") -> EvalResult:
    return EvalResult(
        label=label, benchmark="arithmetic", accuracy=accuracy, n=20, n_correct=round(20 * accuracy),
        ci_low=0.0, ci_high=1.0, unparseable=0, samples_path="s.jsonl", runtime_s=1.0, split="dev",
    )  # fmt: skip


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The Hub's model-repo routes publishing uses, on 127.0.0.1."""
    from huggingface_hub import constants

    api = f"/api/models/{REPO}"
    with ReplayServer() as server:
        server.add_route(
            "/api/repos/create", Recording(b'{"url": "https://huggingface.co/internflow-test/arith-best"}')
        )
        server.add_route(f"{api}/branch/", Recording(b"{}"))
        server.add_route(f"{api}/preupload/", Recording(json.dumps({"files": [
            {"path": "config.json", "uploadMode": "regular", "shouldIgnore": False}]}).encode()))  # fmt: skip
        server.add_route(f"{api}/commit/", Recording.from_file("hf_jobs/commit.json"))
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", "hf_FAKEtokenForTheReplayHub0123")
        yield server


@pytest.fixture
def iteration(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Iteration 2 of campaign c1, scoring 60% where the baseline has 30% and iteration 1 (the
    published best) 40%: it is the new best, until the gate says otherwise."""
    model = tmp_path / "models" / RUN
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    trained = TrainResult(model_path=str(model), steps=8, losses=(), final_loss=1.0, runtime_s=1.0,
                          trackio_project="internflow", trackio_run=RUN, checkpoint_dir=str(tmp_path))  # fmt: skip
    context = IterationContext(index=2, workspace=str(tmp_path), base_model="base", base_fingerprint="fp",
                               benchmark="arithmetic", eval_limit=20, baseline=_eval(0.3, "baseline"),
                               campaign_id="c1", hub_repo_id=REPO)  # fmt: skip
    previous = BestPointer(campaign_id="c1", index=1, model_path=str(tmp_path / "models" / "first"),
                           run_name="first", accuracy=0.4, n=20, baseline_accuracy=0.3)  # fmt: skip
    write_pointer(tmp_path, previous)
    diagnosis = Diagnosis(verdict="improved", gain_vs_baseline=0.3, gain_vs_best=0.2, findings=())
    return trained, _eval(0.6), diagnosis, context, previous


def _training_file(tmp_path: Path, prompts: list[str]) -> PreparedDataset:
    path = tmp_path / "train.jsonl"
    rows = [{"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": "42"}]}
            for p in prompts]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return PreparedDataset(path=str(path), rows=len(rows), sources=(), fingerprint="f")


def _clean_prompts() -> list[str]:
    return ["Write the word blue three times, separated by commas.", "Name a colour that rhymes with bed."]


def _transaction(iteration, data: PreparedDataset, evaluator: str = ""):  # type: ignore[no-untyped-def]
    """The iteration's transaction, from publish on: what `flows/iteration.py` runs after diagnose."""
    from prefect import flow
    from prefect.transactions import transaction

    from internflow.tasks.gate import ContaminationBlocked, publish_gate
    from internflow.tasks.publish import publish_model

    trained, evaluation, diagnosis, context, _ = iteration

    @flow
    def tail() -> tuple[BestPointer | None, str]:
        try:
            with transaction():
                pointer = publish_model(trained, evaluation, diagnosis, context, "run-2")
                publish_gate(data, "arithmetic", evaluator)
        except ContaminationBlocked as blocked:
            return pointer, str(blocked)
        return pointer, ""

    return tail()


def _publish_task_state() -> str:
    """The state name of the newest publish-model task run, once the server has recorded its last change."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
    from prefect.client.schemas.sorting import TaskRunSort

    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            (run,) = client.read_task_runs(
                task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="publish-model")),
                sort=TaskRunSort.EXPECTED_START_TIME_DESC,
                limit=1,
            )
            if run.state_name == "RolledBack" or time.monotonic() > deadline:
                return str(run.state_name)
            time.sleep(1)


def test_a_new_best_is_published_when_the_gate_passes(prefect_harness, hub, iteration, tmp_path: Path) -> None:
    pointer, blocked = _transaction(iteration, _training_file(tmp_path, _clean_prompts()))
    assert blocked == "" and pointer is not None
    assert read_pointer(tmp_path) == pointer and (pointer.index, pointer.accuracy) == (2, 0.6)
    assert pointer.hub_revision == RUN
    branch = [r for r in hub.requests if "/branch/" in r.path]
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in branch] == [("POST", RUN)]
    (commit,) = [r for r in hub.requests if "/commit/" in r.path]
    assert commit.path.endswith(f"/commit/{RUN}") and b"config.json" in commit.body


def test_a_blocked_gate_rolls_back_the_best_pointer_and_the_hub_branch(
    prefect_harness, hub, iteration, tmp_path: Path
) -> None:
    """The model trained on a row that repeats a test prompt: its score is not evidence."""
    from internflow.benchmarks import get_benchmark

    arithmetic = get_benchmark("arithmetic")
    leaked = arithmetic.prompt(arithmetic.load("test")[0])
    pointer, blocked = _transaction(iteration, _training_file(tmp_path, [*_clean_prompts(), leaked]))
    *_, previous = iteration
    assert pointer is not None and pointer.index == 2, "it was published first"
    assert "1 of 3 training rows repeat arithmetic eval prompts (lines 3)" in blocked
    assert read_pointer(tmp_path) == previous, "the best pointer is back on iteration 1"
    branch = [(r.method, r.path.rsplit("/", 1)[-1]) for r in hub.requests if "/branch/" in r.path]
    assert branch == [("POST", RUN), ("DELETE", RUN)], "the pushed revision is deleted"
    assert _publish_task_state() == "RolledBack", "Prefect's history shows the publication undone"


def test_an_evaluation_against_a_changed_evaluator_rolls_the_publication_back(
    prefect_harness, hub, iteration, tmp_path: Path
) -> None:
    from internflow.evaluation.integrity import EvaluatorChangedError

    with pytest.raises(EvaluatorChangedError, match="fixed it at 0000000000000000"):
        _transaction(iteration, _training_file(tmp_path, _clean_prompts()), evaluator="0000000000000000")
    *_, previous = iteration
    assert read_pointer(tmp_path) == previous
    assert [r.method for r in hub.requests if "/branch/" in r.path] == ["POST", "DELETE"]


def test_a_screen_or_a_model_below_the_best_is_not_published(prefect_harness, hub, iteration, tmp_path: Path) -> None:
    trained, evaluation, diagnosis, context, previous = iteration
    screened = (trained, evaluation.model_copy(update={"n": 10}), diagnosis, context, previous)
    worse = (trained, _eval(0.35), diagnosis, context, previous)
    for case in (screened, worse):
        pointer, blocked = _transaction(case, _training_file(tmp_path, _clean_prompts()))
        assert pointer is None and blocked == ""
    assert read_pointer(tmp_path) == previous and not hub.requests
