"""Runs a server command and takes its whole process tree down with it.

`python -m internflow.evaluation.watchdog -- <command…>` starts the command in a session of its
own and stops that session (SIGTERM, then SIGKILL) when the watchdog is told to stop, when the
command exits, or when the process that started the watchdog dies — even by SIGKILL, which no
`finally` survives.  vLLM forks engine and worker processes; killing only the API server can leave
them behind, so the whole session goes.  The command also gets PR_SET_PDEATHSIG, so that even a
SIGKILL of the watchdog itself reaches it.  Standard library only: it runs before anything is
imported.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

_GRACE_S = 15.0
_POLL_S = 0.5


def _die_with_parent() -> None:
    """Child side of fork: SIGTERM this process when the watchdog dies (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop_session(process: subprocess.Popen[bytes]) -> int:
    for sig, wait_s in ((signal.SIGTERM, _GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if process.poll() is not None and not _session_alive(process.pid):
                return process.returncode
            time.sleep(0.2)
    process.wait()
    return process.returncode


def _session_alive(session_id: int) -> bool:
    """Whether any process of the session is left (engine cores outlive their API server briefly)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session_id:
                    return True
            except (ProcessLookupError, PermissionError):
                continue
    return False


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--" or len(argv) < 2:
        print("usage: python -m internflow.evaluation.watchdog -- <command…>", file=sys.stderr)
        return 2
    parent = os.getppid()
    process = subprocess.Popen(argv[1:], start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stopping and process.poll() is None and os.getppid() == parent:
        time.sleep(_POLL_S)
    return _stop_session(process)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
