"""`internflow run`'s options are CampaignConfig's fields — the campaign deployment's form in the
Prefect UI — with the same names, help and defaults; `--config FILE` gives them from YAML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.markup import escape

from internflow.deployments.cli import app
from internflow.deployments.cli_options import campaign_config, given_options, option_name
from internflow.schemas import CampaignConfig

INTERNFLOW = str(Path(sys.executable).parent / "internflow")


def _command(name: str) -> Any:
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def _options(name: str) -> dict[str, Any]:
    return {p.name: p for p in _command(name).params if p.name not in ("help", "context")}


def _config(command: str, *args: str) -> CampaignConfig:
    """The CampaignConfig `internflow <command> ARGS` would run with, parsed as the command parses it."""
    context = _command(command).make_context(command, list(args))
    fields = {name: value for name, value in context.params.items() if name != "config_file"}
    return campaign_config(given_options(context, fields), context.params["config_file"])


def test_run_has_one_option_per_campaign_config_field_with_its_name_help_and_default() -> None:
    options = _options("run")
    assert set(options) == set(CampaignConfig.model_fields) | {"config_file"}
    for name, field in CampaignConfig.model_fields.items():
        option = options[name]
        assert option_name(name) in option.opts, name
        assert option.help.startswith(escape(field.description or "")), name
        default = field.get_default(call_default_factory=True)
        if isinstance(default, tuple | dict):  # repeatable options: nothing given is the empty value
            assert list(option.default) == list(default) == [], name
        else:
            assert option.default == default, name


def test_run_defaults_are_the_prefect_forms_defaults() -> None:
    """The campaign deployment's form is the flow's parameter schema; the CLI default planner was once
    `bundled` where the form said `search`."""
    from prefect.utilities.callables import parameter_schema

    from internflow.flows.campaign import campaign

    schema = parameter_schema(campaign.fn).model_dump()
    form = schema["definitions"]["CampaignConfig"]["properties"]
    options = _options("run")
    assert set(form) == set(options) - {"config_file"}
    for name, shown in form.items():
        if "default" in shown and not isinstance(shown["default"], list | dict):
            assert options[name].default == shown["default"], name
    assert options["planner"].default == form["planner"]["default"] == "search"
    assert _config("run") == CampaignConfig()


def test_run_options_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "campaign.yaml"
    path.write_text(
        "time_budget_minutes: 480\nmax_iterations: 60\nplanner: bundled\ndatasets: [arithmetic-direct]\n"
        "column_mappings:\n  hub:org/x: {prompt: instruction, completion: output}\neval_limit: null\n"
    )
    config = _config("run", "--config", str(path), "--max-iterations", "5", "--planner", "search", "--seed", "3")
    assert (config.time_budget_minutes, config.max_iterations, config.planner, config.seed) == (480, 5, "search", 3)
    assert config.datasets == ("arithmetic-direct",) and config.eval_limit is None
    assert config.column_mappings["hub:org/x"].completion == "output"
    assert _config("run", "--eval-limit", "none").eval_limit is None
    assert _config("run", "--push-to-hub", "--hub-repo-id", "me/model").push_to_hub
    assert _config("discover", "--config", str(path), "--datasets", "hub:org/x").datasets == ("hub:org/x",)


def _refused(*args: str) -> str:
    """A refusal: exit 2 and one line on stderr, no traceback."""
    result = subprocess.run([INTERNFLOW, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_iterations: 2\ntime_budget: 30\n", "{path}:2: unknown key 'time_budget': not a CampaignConfig field "
         "(did you mean 'time_budget_minutes'?)"),
        ("planner: search\nmax_iterations: 0\n", "{path}:2: max_iterations: Input should be greater than or equal"),
        ("training_backend: cloud\n", "{path}:1: training_backend: Input should be 'local' or 'hf-jobs'"),
        ("datasets: [\n", "{path}:2: invalid YAML"),
        ("- a list\n", "{path}: expected a mapping of CampaignConfig fields, got list"),
    ],
)  # fmt: skip
def test_run_refuses_a_bad_config_file_naming_file_key_and_line(text: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    assert expected.format(path=path) in _refused("run", "--config", str(path), "-w", str(tmp_path / "ws"))
    assert not (tmp_path / "ws").exists(), "refused before the workspace was made"


def test_run_refuses_a_bad_option_value_in_one_line(tmp_path: Path) -> None:
    line = _refused("run", "--max-iterations", "many", "-w", str(tmp_path / "ws"))
    assert line == "error: max_iterations: Input should be a valid integer, unable to parse string as an integer"
