"""`internflow run` and `internflow discover`: a whole campaign, or its training data alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from internflow.deployments.cli_common import console, err, fail, print_leaderboard
from internflow.deployments.cli_options import ConfigError, campaign_config, campaign_options, given_options

__all__ = ["discover", "run"]


@campaign_options()
def run(context: typer.Context, config_file: Path | None, **fields: Any) -> None:
    """Run a campaign: baseline eval, then planner-driven iterations until the budget is spent.
    Each option is a CampaignConfig field, as in the campaign deployment's form in the Prefect UI."""
    try:
        config = campaign_config(given_options(context, fields), config_file)
    except ConfigError as error:
        raise fail(str(error)) from None

    from internflow.prefect_server import TemporaryServer
    from internflow.workspace import Workspace, WorkspaceError
    from internflow.workspace_lock import WorkspaceBusy, claim_workspace

    try:
        ws = Workspace.open(config.workspace)
        claim_workspace(ws.root, "campaign")  # one writer per workspace, held until this command exits
    except (WorkspaceError, WorkspaceBusy) as error:
        raise fail(str(error)) from None
    # Before prefect/trackio/datasets are imported: they read these once, at import.
    os.environ.update(ws.process_env())
    server = TemporaryServer.reserve()  # the run history's API, started below; it dies with this command

    from internflow.flows.preflight import preflight

    try:
        with console.status("checking the configuration (first use materializes the embedded SmolLM2)…"):
            preflight(config)
    except ValueError as error:
        raise fail(str(error)) from None

    if server is not None:
        server.start(ws.logs_dir)
    from internflow.flows.campaign import campaign

    _one_line_failures_on_the_console()
    try:
        report = campaign(config)
    except Exception as error:  # past preflight: report.json holds the failure; the Prefect run log the traceback
        err.print(
            f"[bold red]campaign failed:[/] {type(error).__name__}: {error} (report: {ws.report_json})", soft_wrap=True
        )
        raise typer.Exit(code=1) from None
    print_leaderboard(report)
    console.print(f"report: {ws.report_json}")


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
        raise fail(str(error)) from None
    os.environ.update(ws.process_env())  # before datasets is imported: it reads HF_DATASETS_CACHE once
    from internflow.data.selection import select_training_data

    try:
        bench = get_benchmark(config.benchmark)
        bench.load("test")
        plan = select_training_data(bench, config, data_paths(config, ws), ws.data_dir, config.recipe.partition("/")[0])
    except (ValueError, RuntimeError) as error:
        raise fail(str(error)) from None
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
