"""One research iteration: literature → dataset → (self-distill) → train → evaluate → diagnose →
publish, the last four as one Prefect transaction: a new best model is published (best pointer,
Hub branch) only if everything after it holds too, and rolled back otherwise."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.transactions import transaction

from internflow import events, narration
from internflow.benchmarks import get_benchmark
from internflow.data.prepare import DatasetRequest
from internflow.diagnostics.run import DiagnoseRequest
from internflow.evaluation.scoring import on_first_items
from internflow.evaluation.server import reachable
from internflow.schemas import (
    EvalRequest,
    EvalResult,
    IterationContext,
    IterationParams,
    IterationResult,
    LiteratureRequest,
    PreparedDataset,
    ServedModel,
    TrainRequest,
    TrainResult,
)
from internflow.secrets import secrets_from_blocks
from internflow.tasks.dataset import prepare_dataset
from internflow.tasks.diagnose import diagnose_iteration
from internflow.tasks.distill import distill_request, self_distill
from internflow.tasks.evaluate import evaluate_model
from internflow.tasks.gate import ContaminationBlocked, publish_gate
from internflow.tasks.literature import survey_literature
from internflow.tasks.publish import publish_learning_curve, publish_model
from internflow.tasks.train import build_train_request, gpu_slot, train_model
from internflow.workspace import Workspace

__all__ = [
    "dataset_request",
    "diagnose_request",
    "eval_request",
    "research_iteration",
    "starting_model",
    "train_request",
]


def starting_model(params: IterationParams, context: IterationContext) -> tuple[str, str]:
    """(model path, fingerprint) training starts from: the base model, or the best iteration's."""
    if params.init_from == "best":
        if context.best_model is None or context.best_run is None:
            raise ValueError("init_from: 'best' needs an earlier iteration that beat the baseline; there is none yet")
        return context.best_model, context.best_run
    return context.base_model, context.base_fingerprint


def train_request(
    params: IterationParams, data: PreparedDataset, context: IterationContext, workspace: Workspace
) -> TrainRequest:
    """The train stage's request: from the base model, or from the best iteration's model."""
    init_model, init_fingerprint = starting_model(params, context)
    return build_train_request(
        init_model, init_fingerprint, data, params, workspace, context.benchmark, backend=context.backend
    )


def dataset_request(params: IterationParams, context: IterationContext, workspace: Workspace) -> DatasetRequest:
    """The dataset stage's request: the parameters' datasets, vetted against the campaign's sources,
    rows measured in the tokens of the model training starts from."""
    return DatasetRequest.for_iteration(
        params, context.benchmark, workspace, sources=context.data_sources, row_budget=context.data_row_budget,
        model=starting_model(params, context)[0],
    )  # fmt: skip


def eval_request(
    trained: TrainResult,
    run_name: str,
    params: IterationParams,
    context: IterationContext,
    workspace: Workspace,
    server: ServedModel | None,
) -> EvalRequest:
    """The evaluate stage's request for the trained model: the campaign's items (a screened iteration's
    first ones) of its selection split (dev: the test split is scored once, at the campaign's end)."""
    return EvalRequest(
        model_path=trained.model_path, model_fingerprint=run_name, benchmark=context.benchmark,
        limit=context.eval_items(params.eval_fraction), seed=context.seed, label=f"iteration-{context.index}",
        samples_dir=workspace.samples_dir, backend=context.eval_backend, server=server,
        adapter=trained.adapter(), evaluator=context.evaluator, split=context.eval_split,
    )  # fmt: skip


def diagnose_request(
    trained: TrainResult, evaluation: EvalResult, params: IterationParams, context: IterationContext,
    workspace: Workspace,
) -> DiagnoseRequest:  # fmt: skip
    """The diagnose stage's request: the iteration compared with the baseline and the best on its own
    items (a screened iteration's fewer ones), its curves read from the workspace's trackio folder."""
    baseline = on_first_items(context.baseline, evaluation.n)
    best = on_first_items(context.best, evaluation.n) if context.best else None
    return DiagnoseRequest(
        train=trained, evaluation=evaluation, baseline=baseline, best=best,
        start=best if params.init_from == "best" else baseline, trackio_dir=str(workspace.trackio_dir),
    )  # fmt: skip


@flow(name="research-iteration", flow_run_name="iteration-{context.index}")
def research_iteration(params: IterationParams, context: IterationContext, rationale: str = "") -> IterationResult:
    """One research iteration for the planner's IterationParams, in the campaign's workspace
    (IterationContext): literature, dataset (and self-distillation), train, evaluate, diagnose, and
    the publish gate for a model that is published. Returns the IterationResult,
    also written to `iterations/<flow run id>.json` for a campaign that ran it on a work pool."""
    started = time.monotonic()
    workspace = Workspace.open(context.workspace)
    with secrets_from_blocks():  # a run on a worker reads its tokens from Prefect Secret blocks too
        result = _iterate(params, context, rationale, workspace)
    result = result.model_copy(update={"wall_s": time.monotonic() - started})
    # Read back by the campaign when this ran on a work pool (a worker's own process).
    path = workspace.iterations_dir / f"{result.flow_run_id}.json"
    path.write_text(result.model_dump_json())
    get_run_logger().info(narration.iteration_line(result, context.workspace))
    return result


def _iterate(
    params: IterationParams, context: IterationContext, rationale: str, workspace: Workspace
) -> IterationResult:
    benchmark = get_benchmark(context.benchmark)
    # The campaign's eval server when this process can reach it; a worker on another machine
    # cannot, and evaluates on a server of its own (or against eval_endpoint, reachable anywhere).
    server = context.eval_server if reachable(context.eval_server) else None
    if context.eval_server is not None and server is None:
        get_run_logger().info(
            "the campaign's eval server %s is out of reach: a server of its own", context.eval_server.base_url
        )

    literature = survey_literature(
        LiteratureRequest(query=benchmark.literature_query, cache_dir=workspace.literature_dir)
    )
    data = prepare_dataset(dataset_request(params, context, workspace))
    _announce_blocked(data, context)
    if params.self_distill_k:  # the starting model's own answers that the task's judge accepts
        distilling = distill_request(
            params, data, starting_model(params, context), context.benchmark, workspace.data_dir
        )
        data = self_distill(distilling, context.eval_backend, server, workspace.logs_dir)
    request = train_request(params, data, context, workspace)
    blocked = None
    try:
        with transaction():  # train → evaluate → publish: a failure or a blocked gate undoes the publication
            with gpu_slot():  # the train task's run is the time its job held a GPU
                trained = train_model(request)
            publish_learning_curve(trained, context.index, workspace.reports_dir)
            evaluation = evaluate_model(eval_request(trained, request.run_name, params, context, workspace, server))
            diagnosis = diagnose_iteration(diagnose_request(trained, evaluation, params, context, workspace))
            if publish_model(trained, evaluation, diagnosis, context, str(flow_run.id)) is not None:
                publish_gate(data, context.benchmark, context.evaluator)
    except ContaminationBlocked as gate:
        blocked = str(gate)
        get_run_logger().warning("publish gate: %s", blocked)
        payload = {"index": context.index, "stage": "publish-gate", "reason": blocked}
        events.emit(events.CONTAMINATION_BLOCKED, context.campaign_id, context.workspace, context.benchmark,
                    payload, str(flow_run.id))  # fmt: skip

    return IterationResult(
        index=context.index,
        params=params,
        rationale=rationale,
        flow_run_id=str(flow_run.id),
        literature=literature,
        data=data,
        train=trained,
        evaluation=evaluation,
        diagnosis=diagnosis,
        wall_s=0.0,
        blocked=blocked,
    )


def _announce_blocked(data: PreparedDataset, context: IterationContext) -> None:
    """One `internflow.contamination.blocked` event per dataset the decontamination gate kept out."""
    for check in data.checks:
        if check.blocked and check.contaminated_rows:
            payload = {"index": context.index, "stage": "dataset", "dataset": check.name, "reason": check.note,
                       "contaminated_rows": check.contaminated_rows}  # fmt: skip
            events.emit(events.CONTAMINATION_BLOCKED, context.campaign_id, context.workspace, context.benchmark,
                        payload)  # fmt: skip
