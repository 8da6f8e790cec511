"""Where a training run executes, behind one interface: `Backend.run(request, log) -> TrainResult`.

Every backend launches the same thing, `python -m internflow.training REQUEST.json`, from the same
`TrainRequest` (so a recipe means the same run everywhere):

- `local` (default): a child process on this machine; a crash or OOM kill cannot take the flow down.
- `hf-jobs`: a Hugging Face Job through `huggingface_hub`'s jobs API; logs streamed back,
  timeout and cancel.

Prefect work pools (process / docker / kubernetes, see prefect.yaml) decide where the *flow* runs;
the `local` backend then trains on that worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from internflow.execution.errors import TrainingFailed

if TYPE_CHECKING:
    from internflow.schemas import TrainRequest, TrainResult

__all__ = ["BACKENDS", "Backend", "TrainingFailed", "UnknownBackendError", "get_backend"]


class UnknownBackendError(ValueError):
    pass


class Backend(Protocol):
    def run(self, request: TrainRequest, log: Callable[[str], None]) -> TrainResult:
        """Train, forwarding noteworthy output lines to `log`; raise `TrainingFailed` on failure."""
        ...


def _local() -> Backend:
    from internflow.execution.local import LocalProcess

    return LocalProcess()


def _hf_jobs() -> Backend:
    from internflow.execution.hf_jobs import HFJobs, HFJobsSettings

    return HFJobs(HFJobsSettings.from_env())


BACKENDS: dict[str, Callable[[], Backend]] = {"local": _local, "hf-jobs": _hf_jobs}


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise UnknownBackendError(f"backend: unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]()
