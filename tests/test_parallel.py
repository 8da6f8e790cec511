"""Parallel iterations on a Prefect work pool, for real: a throwaway Prefect server on 127.0.0.1, the
`iteration` deployment from prefect.yaml on a process pool with two workers, the `gpu` concurrency
limit, the tiny random model.  A campaign with parallel_iterations=2 runs its round's two
iterations at the same time (their train stages overlap in the flow-run history) with `gpu`
limit 2, and one training job at a time with limit 1; either way each iteration's result equals
running it on its own, one after the other.

Overlap is read from the train task runs' start and end times on the server, never from wall
time, so a loaded machine only makes the test slower."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from internflow.schemas import CampaignConfig, CampaignReport, IterationContext, IterationParams, IterationResult
from tests.prefect_server import PrefectServer, prefect_cli, using_api

pytestmark = pytest.mark.slow

POOL = "internflow-process"
CAMPAIGN_TIMEOUT_S = 900  # two worker processes importing torch on two busy cores take a while
RECORDED_TIMEOUT_S = 60  # for the server to record a finished task run from its events


@pytest.fixture(scope="module")
def pool_with_two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with PrefectServer(tmp_path_factory.mktemp("prefect-parallel")) as server:
        prefect_cli(server.env, "work-pool", "create", POOL, "--type", "process")
        prefect_cli(server.env, "deploy", "--name", "iteration")
        server.worker(POOL, "gpu-0")
        server.worker(POOL, "gpu-1")
        try:
            yield server.env
        except BaseException:
            print(server.logs())
            raise


def _set_gpu_limit(slots: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    from internflow.tasks.train import GPU_LIMIT

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
            client.update_global_concurrency_limit(GPU_LIMIT, GlobalConcurrencyLimitUpdate(limit=slots))
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=slots))


def _campaign(env: dict[str, str], tiny_model: Path, workspace: Path, gpu_slots: int) -> CampaignReport:
    """The campaign flow in this process, its round's iterations on the pool's workers."""
    from internflow.flows.campaign import campaign

    config = CampaignConfig(
        model=str(tiny_model),
        workspace=str(workspace),
        max_iterations=2,
        parallel_iterations=2,
        work_pool=POOL,
        eval_limit=8,
        recipe="sft/smoke",
        eval_backend="transformers",
        planner="search",
        time_budget_minutes=60,
    )
    box: dict[str, object] = {}

    def run() -> None:
        with using_api(env):
            _set_gpu_limit(gpu_slots)
            box["state"] = campaign(config, return_state=True)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(CAMPAIGN_TIMEOUT_S)
    assert not thread.is_alive(), f"the campaign did not finish in {CAMPAIGN_TIMEOUT_S} s"
    state = box["state"]
    assert state.is_completed(), state  # type: ignore[attr-defined]
    return state.result()  # type: ignore[attr-defined]


def _train_spans(env: dict[str, str], report: CampaignReport) -> list[tuple[datetime, datetime]]:
    """(start, end) of each iteration's train task run, as the server recorded them.  Prefect 3
    records task runs from the events clients send (the server's task-run recorder, asynchronous):
    on a loaded machine they land a few seconds after the flow has returned, so they are awaited."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    spans = []
    with using_api(env), get_client(sync_client=True) as client:
        for result in report.iterations:
            flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[result.flow_run_id]))
            deadline = time.monotonic() + RECORDED_TIMEOUT_S
            while True:
                train = [t for t in client.read_task_runs(flow_run_filter=flow_run) if t.name.startswith("train-")]
                if (train and train[0].end_time is not None) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            (run,) = train
            assert run.start_time is not None and run.end_time is not None, run
            spans.append((run.start_time, run.end_time))
    return spans


def _overlap(spans: list[tuple[datetime, datetime]]) -> bool:
    (start_a, end_a), (start_b, end_b) = spans
    return start_a < end_b and start_b < end_a


def _same_outcome(a: IterationResult, b: IterationResult) -> None:
    """Two runs of one iteration agree: parameters, training curve, score and every answer."""
    assert a.params == b.params
    assert [p.loss for p in a.train.losses] == pytest.approx([p.loss for p in b.train.losses], rel=1e-5)
    assert (a.evaluation.accuracy, a.evaluation.n) == (b.evaluation.accuracy, b.evaluation.n)
    answers = [[json.loads(line)["output"] for line in Path(r.evaluation.samples_path).read_text().splitlines()]
               for r in (a, b)]  # fmt: skip
    assert answers[0] == answers[1]


@pytest.fixture(scope="module")
def two_gpus(pool_with_two_workers, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> CampaignReport:
    return _campaign(pool_with_two_workers, tiny_model, tmp_path_factory.mktemp("two-gpus"), gpu_slots=2)


def test_a_round_runs_its_iterations_at_the_same_time_on_two_workers(pool_with_two_workers, two_gpus) -> None:
    report = two_gpus
    assert [r.index for r in report.iterations] == [1, 2] and not report.failures, report.failures
    assert report.iterations[0].params != report.iterations[1].params, "a round's proposals are distinct"
    assert report.stop_reason == "iteration budget spent (2 of 2)"
    spans = _train_spans(pool_with_two_workers, report)
    assert _overlap(spans), f"the two train stages ran one after the other: {spans}"


def test_the_parallel_round_equals_its_iterations_run_one_by_one(
    pool_with_two_workers, two_gpus, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from internflow.flows.iteration import research_iteration

    with using_api(pool_with_two_workers):
        for parallel in two_gpus.iterations:
            with get_client(sync_client=True) as client:
                parameters = client.read_flow_run(parallel.flow_run_id).parameters
            context = IterationContext.model_validate(parameters["context"])
            alone = research_iteration(  # in this process, after the other, in a workspace of its own
                IterationParams.model_validate(parameters["params"]),
                context.model_copy(update={"workspace": str(tmp_path / f"alone-{context.index}")}),
                parameters["rationale"],
            )
            _same_outcome(parallel, alone)


def test_with_one_gpu_slot_the_train_stages_take_turns(
    pool_with_two_workers, two_gpus, tiny_model: Path, tmp_path: Path
) -> None:
    report = _campaign(pool_with_two_workers, tiny_model, tmp_path, gpu_slots=1)
    spans = _train_spans(pool_with_two_workers, report)
    assert not _overlap(spans), f"one gpu slot, yet the train stages overlapped: {spans}"
    for one_slot, two_slots in zip(report.iterations, two_gpus.iterations, strict=True):
        _same_outcome(one_slot, two_slots)


def test_without_a_pool_a_round_runs_as_sub_flows_of_the_campaign_at_the_same_time(
    prefect_harness, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from internflow.agent.digest import read_iteration_records
    from internflow.flows.campaign import campaign

    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    config = CampaignConfig(
        model=str(tiny_model), workspace=str(tmp_path), max_iterations=2, parallel_iterations=2, eval_limit=8,
        recipe="sft/smoke", eval_backend="transformers", planner="search", time_budget_minutes=60,
    )  # fmt: skip
    report = campaign(config)
    assert [r.index for r in report.iterations] == [1, 2] and not report.failures
    records = read_iteration_records(report.flow_run_id or "", report.iterations)
    assert [r.index for r in records] == [1, 2], "both are sub-flow runs of the campaign run"
    spans = _train_spans({"PREFECT_API_URL": _api_url()}, report)  # the session's test server
    assert _overlap(spans), f"the round's train stages ran one after the other: {spans}"


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())
