"""What the `internflow` command's modules share: the consoles, the error exit, the options
several commands take, and a campaign's leaderboard as printed."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from internflow.deployments.cli_options import field_option
from internflow.schemas import CampaignConfig, CampaignReport

__all__ = ["DEFAULT", "WorkspaceOption", "console", "err", "fail", "print_leaderboard"]

# Defaults of the CampaignConfig fields other commands share (their options: field_option).
DEFAULT = {name: field.default for name, field in CampaignConfig.model_fields.items()}

# Piped or logged output has no terminal width: 120 columns keeps the leaderboard on one line per row.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)

WorkspaceOption = Annotated[str, field_option("workspace")]


def fail(message: str) -> typer.Exit:
    # escape: a message's own brackets ('[:config][@split]', '[1, 2]') are not rich markup.
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # paths stay copy-pasteable
    return typer.Exit(code=2)


def print_leaderboard(report: CampaignReport) -> None:
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
