"""The campaign and iteration flows on a tiny in-process model, against a real Prefect API."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from internflow.schemas import CampaignConfig

if TYPE_CHECKING:
    from prefect.client.schemas.objects import Artifact

STAGES = {"literature", "dataset", "train", "evaluate", "diagnose"}


@pytest.fixture(scope="module")
def finished_campaign(prefect_harness, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch_module):
    from internflow.flows.campaign import campaign

    monkeypatch_module.setenv("INTERNFLOW_OFFLINE", "1")
    workspace = tmp_path_factory.mktemp("campaign")
    config = CampaignConfig(
        model=str(tiny_model),
        workspace=str(workspace),
        max_iterations=2,
        eval_limit=12,
        recipe="sft/lora-smoke",  # the default eval path: a vLLM server, LoRA adapters hot-loaded into it
        time_budget_minutes=30,
    )
    return campaign(config), workspace


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


async def _flow_runs_and_tasks(flow_run_ids: list[str]) -> dict[str, dict]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = {}
        for run_id in flow_run_ids:
            flow_run = await client.read_flow_run(run_id)
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
            runs[run_id] = {"state": flow_run.state_type.value, "tasks": {t.name.rsplit("-", 1)[0]: t for t in tasks}}
        return runs


def test_campaign_runs_iterations_and_states_why_it_stopped(finished_campaign) -> None:
    report, workspace = finished_campaign
    assert len(report.iterations) == 2 and not report.failures
    assert report.stop_reason == "iteration budget spent (2 of 2)"
    on_disk = json.loads((workspace / "report.json").read_text())
    assert on_disk["stop_reason"] == report.stop_reason
    assert [it["flow_run_id"] for it in on_disk["iterations"]] == [r.flow_run_id for r in report.iterations]
    assert on_disk["baseline"]["n"] == 12


def test_campaign_evaluates_on_one_vllm_server_and_hot_loads_lora_adapters(finished_campaign) -> None:
    report, workspace = finished_campaign
    evaluations = [report.baseline] + [r.evaluation for r in report.iterations]
    assert {e.backend for e in evaluations} == {"vllm"}
    assert report.iterations[0].params.use_lora and report.iterations[0].train.adapter_path
    # One server for the whole campaign: each trained model's weights are reloaded into it (on a
    # GPU, LoRA adapters are hot-loaded instead).
    assert len(list((workspace / "logs").glob("vllm-*.log"))) == 1
    assert json.loads((workspace / "evaluator.json").read_text())["arithmetic"]
    assert report.test_baseline is not None and report.test_baseline.backend == "vllm"


def test_iterations_are_chosen_on_dev_and_the_test_split_is_scored_once_after_the_last_plan(finished_campaign) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    from internflow.agent.planner import PlannerState

    report, workspace = finished_campaign
    assert report.selected_on == "dev" and report.baseline.split == "dev" and report.baseline.n == 12
    assert {r.evaluation.split for r in report.iterations} == {"dev"}
    assert report.test_baseline is not None and report.test_baseline.split == "test"
    assert report.test_baseline.n == 12 and report.dev_source.startswith("the bundled dev split")
    if report.best_iteration is not None:
        assert report.test_best is not None and report.test_best.split == "test"
    # The planner's state cannot even be built with a test score in it.
    with pytest.raises(ValueError, match="test-split scores must never reach the planner"):
        PlannerState(config=report.config, baseline=report.test_baseline, history=(), datasets=(), default_datasets=())

    async def task_runs() -> list:
        async with get_client() as client:
            campaign_run = FlowRunFilter(id=FlowRunFilterId(any_=[report.flow_run_id]))
            children = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[report.flow_run_id]))
            return await client.read_task_runs(flow_run_filter=campaign_run) + await client.read_task_runs(
                flow_run_filter=children
            )

    runs = asyncio.run(task_runs())
    plans = [r for r in runs if r.name.rsplit("-", 1)[0] == "plan-round"]  # not "planner-log", which closes it
    test_samples = sorted((workspace / "eval-samples").glob("*-test-*.jsonl"))
    assert len(test_samples) == (2 if report.test_best else 1)  # once each: the baseline and the best on dev
    last_plan_end = max(r.end_time for r in plans).timestamp()
    assert all(path.stat().st_mtime > last_plan_end for path in test_samples), "test scored before the last plan"


def test_every_iteration_has_its_five_stages_completed_in_prefect(finished_campaign) -> None:
    report, _ = finished_campaign
    runs = asyncio.run(_flow_runs_and_tasks([r.flow_run_id for r in report.iterations] + [report.flow_run_id]))
    for result in report.iterations:
        run = runs[result.flow_run_id]
        assert run["state"] == "COMPLETED"
        assert set(run["tasks"]) >= STAGES, run["tasks"].keys()
        assert all(run["tasks"][stage].state_type.value == "COMPLETED" for stage in STAGES)
    assert runs[report.flow_run_id]["state"] == "COMPLETED"


def test_campaign_publishes_leaderboard_and_stage_artifacts(finished_campaign) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def keys() -> set[str]:
        async with get_client() as client:
            wanted = ["leaderboard", "literature", "dataset", "train-loss", "evaluation", "diagnosis", "proposal"]
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=wanted)))
            return {a.key for a in found}

    assert asyncio.run(keys()) == {
        "leaderboard",
        "literature",
        "dataset",
        "train-loss",
        "evaluation",
        "diagnosis",
        "proposal",
    }


def test_campaign_writes_only_inside_its_workspace(finished_campaign) -> None:
    report, workspace = finished_campaign
    for result in report.iterations:
        for path in (
            result.train.model_path,
            result.train.checkpoint_dir,
            result.evaluation.samples_path,
            result.data.path,
        ):
            assert Path(path).is_relative_to(workspace), path
    samples = [json.loads(line) for line in Path(report.iterations[0].evaluation.samples_path).read_text().splitlines()]
    assert len(samples) == 12 and {"prompt", "output", "extracted", "expected", "correct"} <= set(samples[0])


def test_trackio_db_in_workspace_holds_each_training_curve(finished_campaign) -> None:
    report, workspace = finished_campaign
    databases = list((workspace / "trackio").glob("*.db"))
    assert databases, "trackio wrote no database into the workspace"
    with sqlite3.connect(databases[0]) as db:
        logged = dict(db.execute("SELECT run_name, COUNT(*) FROM metrics GROUP BY run_name").fetchall())
    for result in report.iterations:
        assert logged.get(result.train.trackio_run, 0) >= result.train.steps


def test_trained_model_folder_loads_with_transformers(finished_campaign) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report, _ = finished_campaign
    path = report.iterations[0].train.model_path
    assert AutoModelForCausalLM.from_pretrained(path) is not None
    assert AutoTokenizer.from_pretrained(path) is not None


def test_identical_iteration_rerun_is_served_from_cache(finished_campaign) -> None:
    from internflow.benchmarks import get_benchmark
    from internflow.evaluation.integrity import pin_evaluator
    from internflow.flows.iteration import research_iteration
    from internflow.models import model_fingerprint
    from internflow.schemas import IterationContext

    report, workspace = finished_campaign
    first = report.iterations[0]
    context = IterationContext(
        index=first.index,
        workspace=str(workspace),
        base_model=report.base_model,
        base_fingerprint=model_fingerprint(report.base_model),
        benchmark="arithmetic",
        eval_limit=12,
        baseline=report.baseline,
        evaluator=pin_evaluator(workspace, get_benchmark("arithmetic")),  # the campaign's, read back
    )
    rerun = research_iteration.with_options(result_storage=workspace / "prefect-results")
    state = rerun(first.params, context, return_state=True)
    result = state.result()
    runs = asyncio.run(_flow_runs_and_tasks([result.flow_run_id]))
    tasks = runs[result.flow_run_id]["tasks"]
    assert tasks["train"].state.name == "Cached" and tasks["evaluate"].state.name == "Cached"
    assert result.evaluation == first.evaluation and result.train == first.train


def test_a_money_budget_stops_before_an_iteration_it_cannot_pay_for(
    prefect_harness, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from internflow.flows.campaign import campaign

    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    config = CampaignConfig(
        model=str(tiny_model),
        workspace=str(tmp_path),
        max_iterations=3,
        eval_limit=8,
        recipe="sft/smoke",
        planner="search",
        eval_backend="transformers",
        money_budget_usd=0.01,
        gpu_usd_per_hour=1_000_000.0,  # any measured training second costs more than the budget
    )

    report = campaign(config)

    assert len(report.iterations) + len(report.failures) == 1  # the first job's cost is unknown until run
    assert report.stop_reason.startswith("money budget: the next job needs")
    # Regression: the newest `proposal` artifact described iteration 2 as if it had run.
    newest = asyncio.run(_newest_artifact(report.flow_run_id or "", "proposal"))
    assert str(newest.data).startswith("## Not run: proposal for iteration 2")
    assert newest.description == f"Not run (iteration 2): {report.stop_reason}"


async def _newest_artifact(flow_run_id: str, key: str) -> Artifact:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[key])
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return found[0]


def test_the_iteration_trains_on_the_campaign_backend_with_its_benchmark(tmp_path: Path) -> None:
    from internflow.flows.iteration import train_request
    from internflow.schemas import EvalResult, IterationContext, IterationParams, PreparedDataset
    from internflow.workspace import Workspace

    baseline = EvalResult(
        label="baseline", benchmark="family-mc", accuracy=0.25, n=4, n_correct=1, ci_low=0.0, ci_high=1.0,
        unparseable=0, samples_path="s.jsonl", runtime_s=1.0,
    )  # fmt: skip
    context = IterationContext(
        index=1, workspace=str(tmp_path), base_model="base", base_fingerprint="fp", benchmark="family-mc",
        eval_limit=4, baseline=baseline, backend="hf-jobs",
    )  # fmt: skip
    data = PreparedDataset(path="train.jsonl", rows=8, sources=(), fingerprint="data")

    request = train_request(IterationParams(), data, context, Workspace.open(tmp_path))

    assert request.backend == "hf-jobs" and request.benchmark == "family-mc"
    screened = train_request(IterationParams(eval_fraction=0.5), data, context, Workspace.open(tmp_path))
    assert screened == request, "scoring on part of the eval subset trains the same model, found again"


def test_a_screened_iteration_is_scored_on_a_prefix_and_compared_on_the_same_items(
    prefect_harness, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from internflow.evaluation.scoring import on_first_items
    from internflow.flows.iteration import research_iteration
    from internflow.flows.ledger import CampaignLedger
    from internflow.recipes import load_recipe
    from internflow.schemas import EvalRequest, IterationContext
    from internflow.tasks.evaluate import evaluate_model
    from internflow.workspace import Workspace

    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    workspace = Workspace.open(tmp_path / "ws")
    baseline = evaluate_model(
        EvalRequest(model_path=str(tiny_model), model_fingerprint="tiny", benchmark="arithmetic", limit=12, seed=0,
                    label="baseline", samples_dir=workspace.samples_dir, backend="transformers", split="dev")
    )  # fmt: skip
    context = IterationContext(
        index=1, workspace=str(workspace.root), base_model=str(tiny_model), base_fingerprint="tiny",
        benchmark="arithmetic", eval_limit=12, baseline=baseline, eval_backend="transformers",
    )  # fmt: skip
    params = load_recipe("tiny", "sft/smoke", ("arithmetic-direct",)).model_copy(update={"eval_fraction": 0.5})

    result = research_iteration(params, context)

    assert result.evaluation.n == 6
    ids = [json.loads(line)["id"] for line in Path(result.evaluation.samples_path).read_text().splitlines()]
    baseline_ids = [json.loads(line)["id"] for line in Path(baseline.samples_path).read_text().splitlines()]
    assert ids == baseline_ids[:6]
    same_items = on_first_items(baseline, 6)
    assert result.diagnosis.gain_vs_baseline == pytest.approx(result.evaluation.accuracy - same_items.accuracy)

    ledger = CampaignLedger(CampaignConfig(), str(workspace.root), str(tiny_model), "tiny", baseline)
    perfect = result.evaluation.model_copy(update={"accuracy": 1.0})
    ledger.history.append(result.model_copy(update={"evaluation": perfect}))
    assert ledger.best() is None, "a screen's score is on other items: it cannot become the best"
