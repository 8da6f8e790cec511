"""One writer per workspace: a campaign (or `internflow train` / `evaluate`) holds the workspace's
lock while it runs, and a second one is refused with a message naming the first.

The lock is `fcntl.flock` on `<workspace>/.internflow.lock`: the kernel drops it when the holding
process dies, however it dies (kill -9 included), so a crashed holder cannot leave it behind.
The file also says who holds it (what, pid, host, since when, the campaign's flow run) for the
refusal message; a holder that died without releasing it is reported to the next holder as
`stale`, so that its flow runs can be marked crashed.  Within one process the lock is
re-entrant: the CLI takes it before its checks, and the campaign flow it then runs takes it again.
Open file descriptions are not inherited by child processes (PEP 446), so a training child or a
vLLM server never keeps it alive.
"""

from __future__ import annotations

import atexit
import datetime as dt
import fcntl
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["LOCK_FILE", "Holder", "WorkspaceBusy", "claim_workspace", "hold_workspace", "stale_holder"]

LOCK_FILE = ".internflow.lock"


class WorkspaceBusy(ValueError):
    """Another live process holds the workspace; the message names it and what to do."""


@dataclass
class Holder:
    what: str  # "campaign", "internflow train", ...
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    since: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
    flow_run_id: str | None = None
    flow_run_name: str | None = None
    released: bool = False

    def describe(self) -> str:
        name = f" {self.flow_run_name!r}" if self.flow_run_name else ""
        run = f" (flow run {self.flow_run_id})" if self.flow_run_id else ""
        return f"{self.what}{name}{run}, pid {self.pid} on {self.host}, since {self.since}"


@dataclass
class _Held:
    fd: int
    holder: Holder
    stale: Holder | None
    depth: int = 0


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


def _read(fd: int) -> Holder | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        return Holder(**json.loads(raw))
    except (ValueError, TypeError):
        return None


def _write(fd: int, holder: Holder) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(asdict(holder)).encode())


def _lock_file(root: str | Path) -> Path:
    return Path(root).expanduser().resolve() / LOCK_FILE


def _acquire(root: Path, holder: Holder) -> _Held:
    """Take (or re-enter) the lock of `root`; WorkspaceBusy when another process holds it."""
    path = _lock_file(root)
    with _guard:
        held = _held.get(path)
        if held is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = _read(fd)
                os.close(fd)
                who = other.describe() if other else "another process"
                cancel = f" (internflow cancel {other.flow_run_id})" if other and other.flow_run_id else ""
                raise WorkspaceBusy(
                    f"workspace: {path.parent} is in use by {who}; wait for it to finish, stop it{cancel}, "
                    "or use another --workspace"
                ) from None
            previous = _read(fd)
            held = _Held(fd, holder, stale=previous if previous and not previous.released else None)
            _held[path] = held
        elif holder.flow_run_id:  # the flow run inside the command that took it: say which
            held.holder.flow_run_id, held.holder.flow_run_name = holder.flow_run_id, holder.flow_run_name
            held.holder.what = holder.what
        _write(held.fd, held.holder)
        held.depth += 1
        return held


def _release(root: Path) -> None:
    path = _lock_file(root)
    with _guard:
        held = _held.get(path)
        if held is None:
            return
        held.depth -= 1
        if held.depth > 0:
            return
        del _held[path]
        held.holder.released = True
        _write(held.fd, held.holder)
        os.close(held.fd)  # closing the last descriptor releases the flock


def claim_workspace(root: str | Path, what: str) -> None:
    """Hold the lock of `root` until this process exits (the CLI's commands); a normal exit marks it
    released, a kill leaves it for the next holder to find stale."""
    _acquire(Path(root), Holder(what=what))
    atexit.register(_release, Path(root))


@contextmanager
def hold_workspace(
    root: str | Path, what: str, flow_run_id: str | None = None, flow_run_name: str | None = None
) -> Iterator[Holder | None]:
    """Hold the lock of `root` for the block; yields the stale holder (one that died holding it), if any."""
    path = Path(root)
    held = _acquire(path, Holder(what=what, flow_run_id=flow_run_id, flow_run_name=flow_run_name))
    try:
        yield held.stale
    finally:
        _release(path)


def stale_holder(root: str | Path) -> Holder | None:
    """The holder that died holding the lock this process now holds (None if none, or not held)."""
    held = _held.get(_lock_file(root))
    return held.stale if held else None
