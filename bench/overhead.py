"""Orchestration overhead: one research iteration through Prefect vs the same training + eval
run as a bare script (the same training child process and the same lighteval evaluation, no Prefect).
Generation is transformers in-process on both sides (`--eval-backend`): this measures orchestration,
so a vLLM server's start-up must not sit on one side only.

Both sides train from the same prepared data with the same parameters in one run, bare first.
Prints both wall times and the ratio; the target is <= 1.05.
"""

from __future__ import annotations

import subprocess
import sys
import time

from _common import iteration_inputs, open_workspace, parse_args, warm_prefect_api


def bare_iteration(request, benchmark_name: str, eval_limit: int, seed: int) -> float:  # -> accuracy
    from pathlib import Path

    from internflow.benchmarks import get_benchmark
    from internflow.evaluation.lighteval_models import InProcessTransformersModel
    from internflow.evaluation.lighteval_tasks import run_lighteval
    from internflow.evaluation.scoring import select_items
    from internflow.schemas import TrainResult
    from internflow.training import RESULT_FILE

    Path(request.checkpoint_dir).mkdir(parents=True, exist_ok=True)
    request_file = Path(request.checkpoint_dir) / "request.json"
    request_file.write_text(request.model_dump_json())
    subprocess.run(
        [sys.executable, "-m", "internflow.training", str(request_file)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**__import__("os").environ, "TRACKIO_DIR": request.trackio_dir},
    )
    trained = TrainResult.model_validate_json((Path(request.checkpoint_dir) / RESULT_FILE).read_text())
    benchmark = get_benchmark(benchmark_name)
    items = select_items(benchmark, eval_limit, seed)
    work_dir = Path(request.checkpoint_dir) / "bare-eval"
    model = InProcessTransformersModel(trained.model_path, str(work_dir / "lighteval-cache"))
    samples = run_lighteval(benchmark, items, model, work_dir)
    return sum(s["correct"] for s in samples) / len(samples)


def main() -> None:
    args = parse_args(__doc__ or "")
    workspace = open_workspace(args.workspace)
    print(f"prefect api start: {warm_prefect_api():.1f}s (not counted)")
    from prefect import flow

    from internflow.data.prepare import DatasetRequest
    from internflow.flows.iteration import research_iteration, train_request
    from internflow.tasks.dataset import prepare_dataset

    params, context = iteration_inputs(args, workspace)
    data = flow(name="bench-data")(
        lambda: prepare_dataset(
            DatasetRequest(
                datasets=params.datasets,
                max_train_samples=params.max_train_samples,
                seed=params.seed,
                benchmark=context.benchmark,
                workspace=workspace,
            )
        )
    )()
    request = train_request(params, data, context, workspace)
    bare_request = request.model_copy(
        update={
            "run_name": "bare",
            "checkpoint_dir": str(workspace.checkpoints_dir / "bare"),
            "model_dir": str(workspace.models_dir / "bare"),
        }
    )

    started = time.monotonic()
    bare_accuracy = bare_iteration(bare_request, context.benchmark, args.eval_limit, context.seed)
    bare = time.monotonic() - started
    print(f"bare script: {bare:.1f}s (accuracy {bare_accuracy:.3f})")

    started = time.monotonic()
    result = research_iteration.with_options(result_storage=workspace.results_dir)(params, context)
    orchestrated = time.monotonic() - started
    print(f"prefect iteration: {orchestrated:.1f}s (accuracy {result.evaluation.accuracy:.3f})")
    print(f"prefect_overhead_ratio: {orchestrated / bare:.3f}")


if __name__ == "__main__":
    main()
