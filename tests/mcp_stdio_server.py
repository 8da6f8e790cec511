"""A tiny MCP server for the planner's MCP tests: stdio by default (started by the MCP client),
or streamable HTTP on 127.0.0.1 with `--http PORT`."""

from __future__ import annotations

import os
import sys

from mcp.server.fastmcp import Context, FastMCP

PORT = int(sys.argv[sys.argv.index("--http") + 1]) if "--http" in sys.argv else 0
server = FastMCP("internflow-test-tools", host="127.0.0.1", port=PORT or 8000)


@server.tool()
def suggest_learning_rate(method: str) -> str:
    """A learning rate a (pretend) paper recommends for the given training method."""
    return f"For {method}, the paper recommends learning_rate 0.0003 (MCP-MARKER)."


@server.tool()
def environment_names() -> str:
    """The names of the environment variables this server process was started with."""
    return ",".join(sorted(os.environ))


@server.tool()
def request_headers(ctx: Context) -> str:
    """The HTTP header names and the Authorization value this server received (http transport only)."""
    request = ctx.request_context.request
    if request is None:
        return "stdio"
    headers = dict(request.headers)
    return f"names={','.join(sorted(headers))} authorization={headers.get('authorization', '-')}"


@server.tool()
def delete_everything() -> str:
    """A tool no allowlist should let through."""
    return "deleted"


if __name__ == "__main__":
    server.run(transport="streamable-http" if PORT else "stdio")
