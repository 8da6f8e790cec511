"""Extra planner tools from MCP servers, configured in a YAML file, through smolagents' MCP client.

    servers:
      papers:                         # a stdio server: a command smolagents starts
        command: python
        args: [-m, my_mcp_server]
        env: {PAPERS_TOKEN_FILE: /path}   # the ONLY environment the server gets, besides PATH
        allow: [search_papers]          # tool names the planner may call (required)
      hub:                            # an http server (streamable-http)
        url: http://127.0.0.1:9000/mcp
        headers: {Authorization: "Bearer ..."}   # sent to this server only
        allow: [dataset_info]

No credential leaks by default: a stdio server starts with an environment of PATH alone plus
what its `env` names (never the parent's HF_TOKEN, OPENAI_API_KEY...), and an http server gets
only its own `headers`.  Tools not on a server's allowlist are dropped before the agent sees them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    from smolagents import Tool

__all__ = ["McpConfig", "McpServer", "load_mcp_config", "open_mcp_tools", "server_parameters"]


class McpServer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    transport: str = "streamable-http"
    headers: dict[str, str] = Field(default_factory=dict)
    allow: list[str] = Field(min_length=1, description="Tool names the planner may call.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of 'command' (stdio) or 'url' (http)")
        return self


class McpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    servers: dict[str, McpServer] = Field(default_factory=dict)


def load_mcp_config(path: str | Path) -> McpConfig:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"mcp_config: {path} is not a file")
    try:
        return McpConfig.model_validate(yaml.safe_load(path.read_text()) or {})
    except (ValidationError, yaml.YAMLError) as error:
        raise ValueError(f"mcp_config: {path}: {error}") from error


def server_parameters(server: McpServer) -> Any:
    """What smolagents' ToolCollection.from_mcp takes; the environment is built from scratch."""
    if server.command is not None:
        from mcp import StdioServerParameters

        env = {"PATH": os.environ.get("PATH", "")} | server.env
        return StdioServerParameters(command=server.command, args=server.args, env=env)
    return {"url": server.url, "transport": server.transport, "headers": dict(server.headers)}


@contextmanager
def open_mcp_tools(config_path: str | None) -> Iterator[list[Tool]]:
    """The allowed tools of every configured server, connected for the duration of the block."""
    if not config_path:
        yield []
        return
    from smolagents import ToolCollection

    config = load_mcp_config(config_path)
    with ExitStack() as stack:
        tools: list[Tool] = []
        for name, server in config.servers.items():
            collection = stack.enter_context(ToolCollection.from_mcp(server_parameters(server), trust_remote_code=True))
            offered = {tool.name: tool for tool in collection.tools}
            missing = [tool for tool in server.allow if tool not in offered]
            if missing:
                raise ValueError(f"mcp_config: server {name!r} offers no tool {missing}; it has {sorted(offered)}")
            tools += [offered[tool] for tool in server.allow]
        yield tools
