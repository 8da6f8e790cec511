"""A campaign's record and its runs in the Prefect API: `leaderboard`, `report`, `campaigns`,
`resume`, `cancel`, and the `ui` and `dashboard` servers that show them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from internflow.deployments.cli_common import WorkspaceOption, console, fail, print_leaderboard
from internflow.schemas import CampaignReport

__all__ = ["campaigns", "cancel", "dashboard", "leaderboard", "report", "resume", "ui"]


def _read_report(workspace: Path) -> CampaignReport:
    """A campaign's report.json, typed; exit 2 naming what is missing when there is no campaign
    record, or the campaign failed before its baseline (a CampaignFailure)."""
    path = workspace / "report.json"
    if not path.is_file():
        raise fail(f"workspace: no report.json in {workspace.resolve()} (has a campaign run there?)")
    report: dict[str, Any] = json.loads(path.read_text())
    if "baseline" not in report:
        raise fail(f"{path}: the campaign failed before its baseline: {report.get('failure')}")
    return CampaignReport.model_validate(report)


def leaderboard(workspace: WorkspaceOption = "internflow-workspace") -> None:
    """Print a finished (or running) campaign's leaderboard from its report.json."""
    print_leaderboard(_read_report(Path(workspace)))


def ui(workspace: WorkspaceOption = "internflow-workspace", port: int = 4200) -> None:
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
        raise fail(str(error)) from None


def campaigns(workspace: WorkspaceOption = "internflow-workspace", limit: int = 20) -> None:
    """List campaign flow runs (newest first) from the Prefect API the UI shows."""
    _use_workspace_history(workspace)
    from internflow.deployments.campaigns import list_campaigns

    table = Table("name", "state", "started (UTC)", "benchmark", "workspace")
    table.add_column("flow run id", no_wrap=True)  # copy-pasted into resume/cancel: never wrapped
    for run in list_campaigns(limit):
        started = run.started.strftime("%Y-%m-%d %H:%M") if run.started else ""
        table.add_row(run.name, run.state, started, run.benchmark, run.workspace, run.id)
    console.print(table)


def resume(
    run_id: Annotated[str, typer.Argument(help="Flow run id of the paused campaign (see `internflow campaigns`).")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject: the campaign stops.")] = False,
    note: Annotated[str, typer.Option(help="Why (kept in the approval artifact).")] = "",
    params: Annotated[Path | None, typer.Option(help="JSON file of edited iteration parameters to run.")] = None,
    workspace: WorkspaceOption = "internflow-workspace",
) -> None:
    """Answer a campaign paused for approval (approve by default), as the UI's form does."""
    edited = None
    if params is not None:
        try:
            edited = json.loads(params.read_text())
        except (OSError, ValueError) as error:
            raise fail(f"params: {params} is not a readable JSON file ({error})") from None
    _use_workspace_history(workspace)
    from pydantic import ValidationError

    from internflow.deployments.campaigns import resume_campaign

    try:
        resume_campaign(run_id, "reject" if reject else "approve", note, edited)
    except (ValidationError, ValueError, RuntimeError) as error:
        raise fail(f"resume {run_id}: {error}") from None
    console.print(f"{'rejected' if reject else 'approved'}: {run_id}")


def cancel(
    run_id: Annotated[str, typer.Argument(help="Flow run id of the campaign (see `internflow campaigns`).")],
    workspace: WorkspaceOption = "internflow-workspace",
) -> None:
    """Cancel a campaign run (its worker stops it; finished iterations and report.json stay)."""
    _use_workspace_history(workspace)
    from prefect.exceptions import ObjectNotFound

    from internflow.deployments.campaigns import cancel_campaign

    try:
        state = cancel_campaign(run_id)
    except (ObjectNotFound, ValueError) as error:
        raise fail(f"cancel {run_id}: no such flow run ({error})") from None
    console.print(f"{run_id}: {state}")


def report(
    workspace: WorkspaceOption = "internflow-workspace",
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


def dashboard(workspace: WorkspaceOption = "internflow-workspace", port: int = 7860) -> None:
    """Open trackio's dashboard on the workspace's training curves (http://127.0.0.1:PORT)."""
    _use_workspace_history(workspace)  # TRACKIO_DIR: read by trackio at import
    import trackio

    # Said before serving, and flushed: trackio's own URL line could still sit in stdout's buffer
    # when a dashboard was stopped (SIGTERM) soon after it first answered.
    print(f"dashboard: http://127.0.0.1:{port} (trackio, project 'internflow')", flush=True)
    trackio.show(project="internflow", host="127.0.0.1", server_port=port, open_browser=False, block_thread=True)
