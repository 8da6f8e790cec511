"""The CLI's temporary Prefect API, started by us so that it dies with the command.

Without `PREFECT_API_URL`, Prefect starts a temporary ("ephemeral") API server as a child process
on first use and stops it from an `atexit` hook — which a kill -9 never runs: the server stayed
up, holding the workspace's run-history database, and every later command on that workspace
met it.  Here the same server (Prefect's own app, as Prefect launches it: uvicorn, UI and
background services off) runs behind `internflow.evaluation.watchdog`, which takes it down
when the command exits or dies (it polls its parent; the server also gets PR_SET_PDEATHSIG), and
`PREFECT_API_URL` points the command at it.  Prefect reads that variable once, at import, so
`TemporaryServer.reserve()` picks the port and sets it before prefect is imported (after the
workspace's `PREFECT_HOME`), and `start()` launches the server once the command's checks pass.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
from pathlib import Path

from internflow.child_env import child_env
from internflow.http import ServerNotReadyError, wait_until_healthy

__all__ = ["TemporaryServer"]

_STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prefect_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("prefect")  # its location only: importing prefect would fix its settings now
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).parent.parent)


class TemporaryServer:
    """A Prefect API on the workspace's history for one command; see the module's docstring."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/api"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def reserve(cls) -> TemporaryServer | None:
        """Point PREFECT_API_URL at a free local port, unless it already names a server (then None)."""
        if os.environ.get("PREFECT_API_URL"):
            return None
        server = cls(_free_port())
        os.environ["PREFECT_API_URL"] = server.url
        return server

    def start(self, log_dir: Path) -> None:
        """Start the server (output in `log_dir/prefect-server.log`) and wait until it answers."""
        command = [
            sys.executable, "-m", "uvicorn", "--app-dir", _prefect_dir(),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        env = child_env({"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"})
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / "prefect-server.log"
        with log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "internflow.evaluation.watchdog", "--", *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        atexit.register(_stop, self.process)
        timeout_s = float(os.environ.get(_STARTUP_TIMEOUT_ENV) or 120)
        try:
            wait_until_healthy(f"{self.url}/health", self.process, timeout_s, interval_s=0.2)
        except ServerNotReadyError as error:
            if error.exited:
                raise RuntimeError(f"the temporary Prefect server exited during start-up; see {log_file}") from error
            _stop(self.process)
            raise RuntimeError(f"the temporary Prefect server was not ready in time; see {log_file}") from error


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # the watchdog stops the server's whole session, then exits
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
