"""`CampaignConfig` as command-line options and as a YAML file.

`internflow run`'s options are generated from `CampaignConfig`'s fields — one option per field,
named after it (`time_budget_minutes` → `--time-budget-minutes`), the field's description as help,
its default as the default — so the CLI and the Prefect deployment form (rendered from the same
model) show the same fields and defaults by construction. `--config campaign.yaml` gives fields
from a file; options given on the command line override it. Values are validated by the model
alone, so bad input is one line naming the field (and the file and line it came from).
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
import yaml
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from rich.markup import escape

from internflow.schemas import CampaignConfig

__all__ = ["ConfigError", "campaign_config", "campaign_options", "field_option", "given_options", "option_name"]

F = TypeVar("F", bound=Callable[..., Any])

# How a field is given on the command line.
Kind = Literal["flag", "value", "many", "mapping"]

CONFIG_HELP = (
    "YAML file of CampaignConfig fields (`time_budget_minutes: 480`, ...); options given on the command line "
    "override it."
)
NONE_HELP = " On the command line, `none` gives None."
MAPPING_HELP = (
    " On the command line: ID=role:column,... (repeatable), e.g. hub:org/x=prompt:instruction,completion:output."
)
SHORT_FLAGS = {"workspace": "-w"}


class ConfigError(ValueError):
    """Bad campaign configuration, as one line naming the field (and the file and line it came from)."""


def option_name(field: str) -> str:
    """The option of a field: `time_budget_minutes` → `--time-budget-minutes`."""
    return "--" + field.replace("_", "-")


def _optional(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(annotation)):
            return args[0], True
    return annotation, False


def _kind(field: FieldInfo) -> Kind:
    inner, _ = _optional(field.annotation)
    origin = typing.get_origin(inner)
    if inner is bool:
        return "flag"
    if origin is tuple:
        return "many"
    if origin is dict:
        return "mapping"
    return "value"


def _metavar(field: FieldInfo) -> str:
    inner, _ = _optional(field.annotation)
    if typing.get_origin(inner) is Literal:
        return "[" + "|".join(str(choice) for choice in typing.get_args(inner)) + "]"
    return {int: "INTEGER", float: "FLOAT"}.get(inner, "TEXT")


def field_help(field: FieldInfo) -> str:
    """A field's description as option help: escaped, since typer reads help as rich markup ('[@split]')."""
    return escape(field.description or "")


def _parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    kind = _kind(field)
    default = field.get_default(call_default_factory=True)
    help_ = field_help(field)
    if _optional(field.annotation)[1] and default is not None:
        help_ += NONE_HELP
    decls = [option_name(name), *([SHORT_FLAGS[name]] if name in SHORT_FLAGS else [])]
    if kind == "flag":
        decls[0] += f"/--no-{name.replace('_', '-')}"
        annotation: Any = Annotated[bool, typer.Option(*decls, help=help_)]
    elif kind in ("many", "mapping"):
        # Repeatable; validated (as a tuple, or parsed into the mapping) by the model, not by click.
        help_ += MAPPING_HELP if kind == "mapping" else ""
        annotation, default = Annotated[list[str], typer.Option(*decls, help=help_, metavar="TEXT")], list(default)
    else:
        # A string for click: the model parses it, so a bad value is the model's one-line error.
        option = typer.Option(*decls, help=help_, metavar=_metavar(field), show_default=default is not None)
        annotation = Annotated[str | None, option]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def campaign_options(*names: str) -> Callable[[F], F]:
    """Give a command `--config FILE` (its `config_file` argument) plus one option per `CampaignConfig`
    field (those named, or all), passed as keyword arguments: hand them and the command's `context`
    to `given_options`."""
    fields = {n: f for n, f in CampaignConfig.model_fields.items() if not names or n in names}
    unknown = set(names) - set(fields)
    if unknown:
        raise ValueError(f"not CampaignConfig fields: {sorted(unknown)}")

    def decorate(command: F) -> F:
        keyword = inspect.Parameter.KEYWORD_ONLY
        config_option = typer.Option("--config", help=CONFIG_HELP, metavar="FILE")
        config = inspect.Parameter(
            "config_file", keyword, annotation=Annotated[Path | None, config_option], default=None
        )
        context = inspect.Parameter("context", keyword, annotation=typer.Context)
        parameters = [context, config, *(_parameter(n, f) for n, f in fields.items())]
        # typer reads a command's options from its signature and annotations.
        command.__signature__ = inspect.Signature(parameters, return_annotation=None)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
        return command

    return decorate


def field_option(name: str, *decls: str) -> Any:
    """A typer option of another command for the `CampaignConfig` field `name`: its option name and help.
    The default goes after `=`: `CampaignConfig.model_fields[name].default`."""
    field = CampaignConfig.model_fields[name]
    decls = decls or (option_name(name), *([SHORT_FLAGS[name]] if name in SHORT_FLAGS else []))
    return typer.Option(*decls, help=field_help(field))


def _column_mappings(name: str, specs: Iterable[str]) -> dict[str, dict[str, str]]:
    """'hub:org/x=prompt:instruction,completion:output' → {'hub:org/x': {'prompt': 'instruction', ...}}."""
    mappings: dict[str, dict[str, str]] = {}
    for spec in specs:
        key, _, roles = spec.rpartition("=")
        pairs = [part.split(":", 1) for part in roles.split(",") if part.strip()]
        if not key or not pairs or any(len(pair) != 2 for pair in pairs):
            raise ConfigError(f"{name}: expected ID=role:column[,role:column...], got {spec!r}")
        mappings[key] = {role.strip(): column.strip() for role, column in pairs}
    return mappings


def _from_command_line(name: str, field: FieldInfo, value: Any) -> Any:
    kind = _kind(field)
    if kind == "many":
        return tuple(value)
    if kind == "mapping":
        return _column_mappings(name, value)
    if kind == "value" and _optional(field.annotation)[1] and str(value).lower() == "none":
        return None
    return value


def _read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The file's fields and the line each is on; ConfigError when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config: cannot read {path} ({error})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(error, 'problem', None) or error})") from None
    if values is None:
        return {}, {}
    if not isinstance(values, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}: expected a mapping of CampaignConfig fields, got {type(values).__name__}")
    lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
    for key in values:
        if key not in CampaignConfig.model_fields:
            close = difflib.get_close_matches(str(key), CampaignConfig.model_fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}:{lines.get(str(key), 1)}: unknown key {key!r}: not a CampaignConfig field{hint}")
    return values, lines


def given_options(context: typer.Context, options: Mapping[str, Any]) -> dict[str, Any]:
    """Of a generated command's field options, those given on the command line (not their defaults)."""
    sources = {name: context.get_parameter_source(name) for name in options}
    return {name: value for name, value in options.items() if getattr(sources[name], "name", "") == "COMMANDLINE"}


def campaign_config(given: Mapping[str, Any], config_file: Path | None = None) -> CampaignConfig:
    """The campaign configuration: fields from `config_file`, overridden by those `given` on the
    command line (raw option values, as `given_options` returns them). Raises ConfigError (one line)."""
    fields = CampaignConfig.model_fields
    from_file, lines = _read_config_file(config_file) if config_file is not None else ({}, {})
    from_command_line = {name: _from_command_line(name, fields[name], value) for name, value in given.items()}
    try:
        return CampaignConfig.model_validate(from_file | from_command_line)
    except ValidationError as error:
        problems = []
        for e in error.errors():
            field = str(e["loc"][0]) if e["loc"] else ""
            where = f"{config_file}:{lines[field]}: " if field in lines and field not in from_command_line else ""
            name = ".".join(map(str, e["loc"]))
            problems.append(f"{where}{name}: {e['msg']}" if name else f"{where}{e['msg']}")
        raise ConfigError("; ".join(problems)) from None
