"""One research iteration: literature → dataset → (self-distill) → train → evaluate → diagnose."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from internflow import narration
from internflow.benchmarks import get_benchmark
from internflow.schemas import (
    IterationContext,
    IterationParams,
    IterationResult,
    LiteratureRequest,
    PreparedDataset,
    TrainRequest,
)
from internflow.workspace import Workspace
from tasks.dataset import prepare_dataset
from tasks.diagnose import diagnose_iteration
from tasks.distill import distill_request, self_distill
from tasks.evaluate import evaluate_model, on_first_items
from tasks.literature import survey_literature
from tasks.publish import publish_learning_curve
from tasks.train import build_train_request, train_model

__all__ = ["research_iteration", "starting_model", "train_request"]


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


@flow(name="research-iteration", flow_run_name="iteration-{context.index}")
def research_iteration(params: IterationParams, context: IterationContext, rationale: str = "") -> IterationResult:
    started = time.monotonic()
    workspace = Workspace.open(context.workspace)
    benchmark = get_benchmark(context.benchmark)

    literature = survey_literature(
        LiteratureRequest(query=benchmark.literature_query, cache_dir=workspace.literature_dir)
    )
    data = prepare_dataset(
        params.datasets,
        params.max_train_samples,
        params.seed,
        context.benchmark,
        workspace,
        method=params.method,
        weights=params.dataset_weights,
        sources=context.data_sources,
        row_budget=context.data_row_budget,
        reward_funcs=params.reward_funcs,
        model=starting_model(params, context)[0],  # rows measured in its tokens against max_length
        max_length=params.max_length,
    )
    if params.self_distill_k:  # the starting model's own answers that the task's judge accepts
        distilling = distill_request(
            params, data, starting_model(params, context), context.benchmark, workspace.data_dir
        )
        data = self_distill(distilling, context.eval_backend, context.eval_server, workspace.logs_dir)
    request = train_request(params, data, context, workspace)
    trained = train_model(request)
    publish_learning_curve(trained, context.index, workspace.reports_dir)
    evaluation = evaluate_model(
        trained.model_path,
        request.run_name,
        context.benchmark,
        context.eval_items(params.eval_fraction),
        context.seed,
        f"iteration-{context.index}",
        workspace.samples_dir,
        backend=context.eval_backend,
        server=context.eval_server,
        adapter=trained.adapter(),
        evaluator=context.evaluator,
        split=context.eval_split,  # dev: the test split is the campaign's, scored once at its end
    )
    # A screened iteration is compared with the baseline and the best on its own (fewer) items.
    baseline = on_first_items(context.baseline, evaluation.n)
    best = on_first_items(context.best, evaluation.n) if context.best else None
    start = best if params.init_from == "best" else baseline
    diagnosis = diagnose_iteration(
        trained, evaluation, baseline, best, start=start, trackio_dir=str(workspace.trackio_dir)
    )

    result = IterationResult(
        index=context.index,
        params=params,
        rationale=rationale,
        flow_run_id=str(flow_run.id),
        literature=literature,
        data=data,
        train=trained,
        evaluation=evaluation,
        diagnosis=diagnosis,
        wall_s=time.monotonic() - started,
    )
    get_run_logger().info(narration.iteration_line(result, context.workspace))
    return result
