"""The shared HTTP layer against the loopback replay server: retries, Retry-After, timeouts,
rate limits, explicit offline mode, and waiting for a server we started to become healthy."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from internflow.http import (
    CircuitOpenError,
    OfflineError,
    ServerNotReadyError,
    ServiceError,
    get,
    get_json,
    policy_for,
    session_for,
    wait_until_healthy,
)
from tests.replay_server import Recording, ReplayServer, unused_port

BODY = Recording(b'{"ok": true}', headers={"Content-Type": "application/json"})


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer(hang_seconds=3) as replay:
        yield replay


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    for switch in ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(switch, raising=False)


def _session(server_url: str, **overrides: object):
    settings = {"base_url": server_url, "timeout_s": 0.5, "backoff_s": 0.0, "min_interval_s": 0.0} | overrides
    return session_for("semantic-scholar", **settings)


def test_json_comes_back_and_the_query_is_sent(server: ReplayServer) -> None:
    server.add_route("/graph", BODY)
    assert get_json(_session(server.url), "/graph/v1/x", {"q": "sft"}) == {"ok": True}
    [sent] = server.requests
    assert sent.query == {"q": ["sft"]} and sent.headers["user-agent"].startswith("internflow")


def test_429_500_and_a_timeout_are_retried_until_the_recording_is_served(server: ReplayServer) -> None:
    server.add_route("/graph", BODY)
    server.inject("/graph", [429, 500, "timeout"])
    started = time.monotonic()
    assert get_json(_session(server.url), "/graph/v1/x") == {"ok": True}
    assert len(server.requests) == 4 and time.monotonic() - started < 4


def test_retry_after_is_honoured(server: ReplayServer) -> None:
    server.add_route("/graph", BODY)
    slow = Recording(b"slow down", 429, {"Retry-After": "1", "Content-Type": "text/plain"})
    server.inject("/graph", [slow])
    started = time.monotonic()
    get_json(_session(server.url), "/graph/v1/x")
    assert time.monotonic() - started >= 0.9 and len(server.requests) == 2


def test_a_retry_after_beyond_the_backoff_cap_waits_only_the_cap(server: ReplayServer) -> None:
    server.add_route("/graph", BODY)
    server.inject("/graph", [Recording(b"slow down", 429, {"Retry-After": "5", "Content-Type": "text/plain"})])
    started = time.monotonic()
    assert get_json(_session(server.url, max_backoff_s=1.0), "/graph/v1/x") == {"ok": True}
    assert 0.9 <= time.monotonic() - started < 3, "Retry-After: 5 held the call past the 1 s backoff cap"


def test_a_call_gives_up_at_its_deadline_whatever_the_server_asks(server: ReplayServer) -> None:
    server.add_route("/graph", BODY)
    busy = Recording(b"busy", 503, {"Retry-After": "1", "Content-Type": "text/plain"})
    server.inject("/graph", [busy] * 20)
    started = time.monotonic()
    with pytest.raises(ServiceError, match=r"HTTP 503 after [23] tries"):
        get(_session(server.url, retries=20, max_backoff_s=1.0, deadline_s=1.5), "/graph/v1/x")
    assert time.monotonic() - started < 4 and len(server.requests) <= 3


def test_a_host_that_just_failed_is_not_asked_again_for_a_while(server: ReplayServer) -> None:
    server.add_route("/graph", BODY)
    server.inject("/graph", [503, 503])
    session = _session(server.url, retries=1, cooldown_s=0.5)
    with pytest.raises(ServiceError, match="HTTP 503 after 2 tries"):
        get(session, "/graph/v1/x")

    started = time.monotonic()
    with pytest.raises(CircuitOpenError, match=r"not asked: it failed 0 s ago \(HTTP 503 after 2 tries\)"):
        get(_session(server.url, retries=1, cooldown_s=0.5), "/graph/v1/other")  # another session, same host
    assert time.monotonic() - started < 0.1 and len(server.requests) == 2, "nothing sent while the circuit is open"

    time.sleep(0.6)
    assert get_json(session, "/graph/v1/x") == {"ok": True} and len(server.requests) == 3


def test_a_404_is_an_answer_and_leaves_the_host_askable(server: ReplayServer) -> None:
    server.add_route("/graph", BODY)
    with pytest.raises(ServiceError, match="HTTP 404$"):
        get(_session(server.url), "/missing")
    assert get_json(_session(server.url), "/graph/v1/x") == {"ok": True}


def test_errors_past_the_retries_raise_a_service_error_naming_the_status(server: ReplayServer) -> None:
    server.add_route("/graph", BODY)
    server.inject("/graph", [503, 503, 503])
    with pytest.raises(ServiceError, match=r"semantic-scholar: .*HTTP 503 after 3 tries") as caught:
        get(_session(server.url, retries=2), "/graph/v1/x")
    assert caught.value.status == 503 and len(server.requests) == 3


def test_a_404_is_not_retried(server: ReplayServer) -> None:
    with pytest.raises(ServiceError, match="HTTP 404$"):
        get(_session(server.url), "/missing")
    assert len(server.requests) == 1


def test_a_refused_connection_is_a_service_error(tmp_path) -> None:
    with unused_port() as port, pytest.raises(ServiceError, match="ConnectionError after 2 tries"):
        get(_session(f"http://127.0.0.1:{port}", retries=1), "/x")


def test_a_server_that_never_answers_times_out(server: ReplayServer) -> None:
    server.add_route("/graph", BODY)
    server.inject("/graph", ["timeout", "timeout"])
    started = time.monotonic()
    with pytest.raises(ServiceError, match="after 2 tries"):
        get(_session(server.url, retries=1), "/graph/v1/x")
    assert time.monotonic() - started < 3


def test_the_rate_limit_spaces_requests_to_one_service(server: ReplayServer) -> None:
    server.add_route("/graph", BODY)
    session = _session(server.url, min_interval_s=0.3)
    started = time.monotonic()
    for _ in range(3):
        get(session, "/graph/v1/x")
    assert time.monotonic() - started >= 0.55


@pytest.mark.parametrize("switch", ["INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_mode_raises_and_sends_nothing(
    switch: str, server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add_route("/graph", BODY)
    monkeypatch.setenv(switch, "1")
    with pytest.raises(OfflineError, match=f"offline mode \\({switch}=1\\)"):
        get(_session(server.url), "/graph/v1/x")
    assert server.requests == []


def test_an_unknown_service_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: arxiv, hf-hub"):
        policy_for("nope")


def test_waiting_for_health_polls_until_200_even_offline(server: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.add_route("/health", Recording(b""))
    server.inject("/health", [503, "disconnect"])  # still starting: an error status, a dropped connection
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")  # a server we started is no external service
    waited = wait_until_healthy(f"{server.url}/health", None, 10, interval_s=0.01)
    assert len(server.requests_to("/health")) == 3 and 0 <= waited < 10


def test_waiting_for_health_stops_when_the_server_exits() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with unused_port() as port, pytest.raises(ServerNotReadyError, match="exited with code 3") as stopped:
        wait_until_healthy(f"http://127.0.0.1:{port}/health", process, 60, interval_s=0.01)
    assert stopped.value.exited and stopped.value.waited_s < 60


def test_waiting_for_health_gives_up_at_the_deadline() -> None:
    started = time.monotonic()
    with unused_port() as port, pytest.raises(ServerNotReadyError, match="no answer 200") as late:
        wait_until_healthy(f"http://127.0.0.1:{port}/health", None, 0.3, started=started, interval_s=0.05)
    assert not late.value.exited and 0.3 <= late.value.waited_s < 3
