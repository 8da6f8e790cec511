"""A throwaway Prefect server on 127.0.0.1 with process-pool workers, for tests that need real
workers (the README's deployment story): `prefect server start`, `prefect deploy` from
prefect.yaml, `prefect worker start`, each a child process of the test, all stopped afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from internflow.http import ServerNotReadyError, wait_until_healthy

__all__ = ["ROOT", "PrefectServer", "prefect_cli", "using_api"]

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prefect_cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """`prefect <args>` from the repository root (where prefect.yaml is); its stdout, or a failed assert."""
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        cwd=ROOT,
        env=env | {"PWD": str(ROOT)},  # prefect.yaml's pull step reads {{ $PWD }}
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextmanager
def using_api(env: dict[str, str]) -> Iterator[None]:
    """Point this process's Prefect client at the test server (above any session harness's settings).

    Prefect keeps one events worker per process, bound to the API it first reached: it is drained
    on the way in and out (as `prefect_test_harness` does on exit), so the events sent meanwhile go
    to this server and later ones to the server in use then, not to one that has stopped."""
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    EventsWorker.drain_all(at_exit=False)
    try:
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            yield
    finally:
        EventsWorker.drain_all(at_exit=False)


class PrefectServer:
    """`with PrefectServer(home) as server:` a healthy server; `server.env` is the environment that
    reaches it; `server.worker(pool)` starts a worker that lives as long as the server."""

    def __init__(self, home: Path, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        self.env = (
            os.environ
            | {
                "PREFECT_HOME": str(home),
                "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
                "PREFECT_WORKER_QUERY_SECONDS": "2",
                "INTERNFLOW_OFFLINE": "1",
            }
            | (extra_env or {})
        )
        self.port = port
        self._stack = ExitStack()

    def _spawn(self, log_name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self._stack.enter_context((self.home / log_name).open("w"))
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

        def stop() -> None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

        self._stack.callback(stop)
        return process

    def __enter__(self) -> PrefectServer:
        server = self._spawn("server.log", "server", "start", "--host", "127.0.0.1", "--port", str(self.port))
        try:
            wait_until_healthy(f"http://127.0.0.1:{self.port}/api/health", server, 180, interval_s=1)
        except ServerNotReadyError as error:
            self._stack.close()
            log = self.log("server.log")
            raise AssertionError(f"the Prefect server did not become healthy ({error}):\n{log}") from error
        return self

    def worker(self, pool: str, name: str) -> None:
        """A worker on `pool` that runs one flow run at a time (a worker per GPU)."""
        self._spawn(f"worker-{name}.log", "worker", "start", "--pool", pool, "--name", name, "--limit", "1")

    def log(self, name: str) -> str:
        path = self.home / name
        return path.read_text()[-4000:] if path.is_file() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{self.log(p.name)}" for p in sorted(self.home.glob("*.log")))

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()  # workers first (last started), then the server
