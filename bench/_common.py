"""Shared set-up for the bench scripts: a fresh workspace with its environment applied before
Prefect is imported, a warm Prefect API, and the iteration context for a model."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from internflow.workspace import Workspace  # noqa: E402


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="smollm2-135m", help="base model (default: the embedded SmolLM2)")
    parser.add_argument("--benchmark", default="arithmetic")
    parser.add_argument("--recipe", default="sft/default")
    parser.add_argument("--eval-limit", type=int, default=100)
    parser.add_argument(
        "--eval-backend", default="transformers", choices=["transformers", "vllm"], help="answers for evaluation"
    )
    parser.add_argument("--workspace", default=None, help="default: a fresh temporary folder")
    return parser.parse_args()


def eval_bench_parser(description: str, items: int, items_help: str) -> argparse.ArgumentParser:
    """The options the evaluation benches share: which model answers which seeded items."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="smollm2-135m", help="base model (default: the embedded SmolLM2)")
    parser.add_argument("--benchmark", default="arithmetic")
    parser.add_argument("--items", type=int, default=items, help=items_help)
    parser.add_argument("--seed", type=int, default=0, help="which seeded subset of the test split")
    return parser


def open_workspace(path: str | None) -> Workspace:
    workspace = Workspace.open(path or tempfile.mkdtemp(prefix="internflow-bench-"))
    os.environ.update(workspace.process_env() | {"INTERNFLOW_OFFLINE": "1"})
    return workspace


def warm_prefect_api() -> float:
    """Start Prefect's API (ephemeral unless PREFECT_API_URL is set) before anything is timed."""
    from prefect import flow

    started = time.monotonic()
    flow(name="bench-warm-up")(lambda: None)()
    return time.monotonic() - started


def iteration_inputs(args: argparse.Namespace, workspace: Workspace):  # -> (IterationParams, IterationContext)
    from internflow.benchmarks import get_benchmark
    from internflow.models import model_fingerprint, resolve_model
    from internflow.recipes import load_recipe
    from internflow.schemas import EvalResult, IterationContext

    benchmark = get_benchmark(args.benchmark)
    base = resolve_model(args.model)
    params = load_recipe(args.model, args.recipe, benchmark.default_datasets)
    placeholder = EvalResult(
        label="baseline",
        benchmark=benchmark.name,
        accuracy=0.0,
        n=1,
        n_correct=0,
        ci_low=0.0,
        ci_high=1.0,
        unparseable=0,
        samples_path="",
        runtime_s=0.0,
        split="dev",  # iterations are scored on dev; a test score must never reach the planner
    )
    context = IterationContext(
        index=1,
        workspace=str(workspace.root),
        base_model=base,
        base_fingerprint=model_fingerprint(base),
        benchmark=benchmark.name,
        eval_limit=args.eval_limit,
        baseline=placeholder,
        eval_backend=args.eval_backend,
    )
    return params, context
