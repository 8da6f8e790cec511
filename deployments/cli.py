"""The `internflow` command (`internflow.deployments.cli:app`, pyproject's entry point): the Typer app and its
commands, in the order `internflow --help` lists them.  Each group of commands is a module beside
this one: `cli_campaign.py` (run, discover), `cli_stages.py` (fetch-model, evaluate, train,
benchmarks) and `cli_history.py` (leaderboard, ui, campaigns, resume, cancel, report, dashboard);
`cli_common.py` holds what they share, `cli_options.py` CampaignConfig as options.  Heavy libraries
(torch, transformers, prefect) are imported inside commands, never at module import, so
`internflow --help` stays instant."""

from __future__ import annotations

import typer

from internflow.deployments.cli_campaign import discover, run
from internflow.deployments.cli_history import campaigns, cancel, dashboard, leaderboard, report, resume, ui
from internflow.deployments.cli_stages import benchmarks, evaluate, fetch_model, train

__all__ = ["app"]

app = typer.Typer(help="Autonomous LLM post-training research campaigns on Prefect.", no_args_is_help=True)
app.command()(run)
app.command()(discover)
app.command("fetch-model")(fetch_model)
app.command()(evaluate)
app.command()(train)
app.command()(leaderboard)
app.command()(benchmarks)
app.command()(ui)
app.command()(campaigns)
app.command()(resume)
app.command()(cancel)
app.command()(report)
app.command()(dashboard)


if __name__ == "__main__":
    app()
