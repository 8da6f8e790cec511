"""A loopback HTTP server that replays recorded responses and injects faults, for tests.

Real clients (arxiv, requests, huggingface_hub, ...) are pointed at it, so their own retry and
timeout logic runs for real while nothing leaves 127.0.0.1.  Every request is recorded so a test
can assert on what was sent (an Authorization header, a query parameter) or on how many tries
there were.  Use it as a context manager, or through the `replay_server` fixture (import it into
a test module to use it there).
"""

from __future__ import annotations

import mimetypes
import socket
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = [
    "RECORDINGS",
    "Fault",
    "RecordedRequest",
    "Recording",
    "ReplayServer",
    "replay_server",
    "unused_port",
]

RECORDINGS = Path(__file__).parent / "recordings"


@dataclass(frozen=True)
class Recording:
    """One recorded HTTP response."""

    body: bytes
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_file(cls, name: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Recording:
        """A recording whose body is the file `tests/recordings/<name>`, its Content-Type guessed."""
        path = RECORDINGS / name
        content_type = {".xml": "application/atom+xml; charset=utf-8"}.get(path.suffix) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        return cls(path.read_bytes(), status, {"Content-Type": content_type, **(headers or {})})


# An int answers with that HTTP status; "timeout" holds the request past the client's timeout and
# then drops it; "disconnect" drops it at once (for clients whose timeout can't be set short);
# a Recording is served once instead of the route's own.
Fault = int | Literal["timeout", "disconnect"] | Recording


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased: HTTP header names are case-insensitive
    body: bytes


class ReplayServer:
    """Serves `routes` (path prefix → recording; the longest matching prefix wins, else 404)."""

    def __init__(self, routes: Mapping[str, Recording] | None = None, hang_seconds: float = 5.0) -> None:
        self.routes: dict[str, Recording] = dict(routes or {})
        self.hang_seconds = hang_seconds
        self.requests: list[RecordedRequest] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # A short poll interval: shutdown() waits up to one interval, on every test's teardown.
        serve = lambda: self._httpd.serve_forever(poll_interval=0.02)  # noqa: E731
        self._thread = threading.Thread(target=serve, name="replay-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_route(self, prefix: str, recording: Recording) -> None:
        self.routes[prefix] = recording

    def inject(self, prefix: str, faults: list[Fault]) -> None:
        """The next requests to `prefix` meet these faults in order; then the recording is served again."""
        with self._lock:
            self._faults.setdefault(prefix, deque()).extend(faults)

    def requests_to(self, prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    def start(self) -> ReplayServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # releases requests held by a "timeout" fault
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _next(self, path: str) -> tuple[str | None, Fault | None]:
        prefix = max((p for p in self.routes if path.startswith(p)), key=len, default=None)
        with self._lock:
            queue = self._faults.get(prefix) if prefix is not None else None
            return prefix, (queue.popleft() if queue else None)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _replay(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append(
                    RecordedRequest(
                        method=self.command,
                        path=url.path,
                        query=parse_qs(url.query, keep_blank_values=True),
                        headers={name.lower(): value for name, value in self.headers.items()},
                        body=self.rfile.read(length) if length else b"",
                    )
                )
                prefix, fault = server._next(url.path)
                if fault == "timeout":
                    server._closing.wait(server.hang_seconds)
                if fault in ("timeout", "disconnect"):
                    self.close_connection = True  # no response at all
                    return
                if prefix is None:
                    recording = Recording(b"no recording for this path", 404, {"Content-Type": "text/plain"})
                elif isinstance(fault, int):
                    # Retry-After: 0 so clients that honour it retry at once instead of stalling the test.
                    headers = {"Content-Type": "text/plain", "Retry-After": "0"}
                    recording = Recording(f"injected {fault}".encode(), fault, headers)
                else:
                    recording = fault if isinstance(fault, Recording) else server.routes[prefix]
                self.send_response(recording.status)
                for name, value in recording.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(recording.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(recording.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _replay  # noqa: N815 (http.server's names)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
                pass  # keep pytest output clean

        return Handler


@contextmanager
def unused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def replay_server() -> Iterator[ReplayServer]:
    """A running server with no routes yet: add them with `add_route`."""
    with ReplayServer() as server:
        yield server
