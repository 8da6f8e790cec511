"""MCP tools for the planner from a local stdio server: allowlist, no credential leaks, agent use."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from internflow.agent.llm_planner import LLMPlanner
from internflow.agent.mcp_tools import load_mcp_config, open_mcp_tools
from tests.test_llm_planner import ONE_RUN, ScriptedModel, answer, call, make_state

SERVER = Path(__file__).with_name("mcp_stdio_server.py")


def write_config(tmp_path: Path, env: dict[str, str] | None = None, allow: list[str] | None = None) -> str:
    server = {
        "command": sys.executable,
        "args": [str(SERVER)],
        "allow": allow or ["suggest_learning_rate", "environment_names"],
    }
    if env:
        server["env"] = env
    path = tmp_path / "mcp.yaml"
    path.write_text(yaml.safe_dump({"servers": {"papers": server}}))
    return str(path)


def test_only_allowlisted_tools_are_offered(tmp_path: Path) -> None:
    with open_mcp_tools(write_config(tmp_path)) as tools:
        assert sorted(t.name for t in tools) == ["environment_names", "suggest_learning_rate"]


def test_no_token_reaches_a_stdio_server_unless_configured_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    with open_mcp_tools(write_config(tmp_path)) as tools:
        seen = next(t for t in tools if t.name == "environment_names")().split(",")
    assert "HF_TOKEN" not in seen and "OPENAI_API_KEY" not in seen and "PATH" in seen
    with open_mcp_tools(write_config(tmp_path, env={"HF_TOKEN": "hf_for_this_server"})) as tools:
        seen = next(t for t in tools if t.name == "environment_names")().split(",")
    assert "HF_TOKEN" in seen and "OPENAI_API_KEY" not in seen


def test_an_allowlisted_tool_the_server_lacks_is_a_clear_error(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match=r"offers no tool \['web_search'\]"),
        open_mcp_tools(write_config(tmp_path, allow=["web_search"])),
    ):
        pass


def test_bad_config_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "mcp.yaml"
    both = {"command": "python", "url": "http://127.0.0.1:1", "allow": ["t"]}
    path.write_text(yaml.safe_dump({"servers": {"x": both}}))
    with pytest.raises(ValueError, match="(?s)mcp.yaml.*exactly one of 'command'"):
        load_mcp_config(path)
    path.write_text(yaml.safe_dump({"servers": {"x": {"command": "python"}}}))
    with pytest.raises(ValueError, match="allow"):
        load_mcp_config(path)


def test_the_agent_uses_an_mcp_tool_from_a_stdio_server(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    model = ScriptedModel(
        [
            call("suggest_learning_rate", {"method": "sft"}),
            answer({"learning_rate": 3e-4, "rationale": "the paper tool suggested 3e-4", "evidence": ["MCP"]}),
        ]
    )
    planner = LLMPlanner(model, "scripted", mcp_tools=lambda: open_mcp_tools(config))
    proposal = planner.propose(make_state(ONE_RUN))
    assert proposal is not None and proposal.source == "scripted" and proposal.params.learning_rate == 3e-4
    assert "MCP-MARKER" in model.prompts[1]  # the server's answer reached the model
    assert "delete_everything" not in model.prompts[0]


@pytest.fixture
def http_mcp_server():
    """The test server on streamable HTTP at a free loopback port; yields its /mcp URL."""
    import socket
    import subprocess
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_an_http_server_gets_only_its_own_headers(
    http_mcp_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")

    def headers_seen(headers: dict[str, str] | None) -> str:
        server: dict[str, object] = {"url": http_mcp_server, "allow": ["request_headers"]}
        if headers:
            server["headers"] = headers
        path = tmp_path / "mcp.yaml"
        path.write_text(yaml.safe_dump({"servers": {"hub": server}}))
        with open_mcp_tools(str(path)) as tools:
            return str(tools[0]())

    plain = headers_seen(None)
    assert "authorization=-" in plain and "hf_secret" not in plain and "sk-secret" not in plain
    assert "authorization=Bearer mcp-only" in headers_seen({"Authorization": "Bearer mcp-only"})
