"""The workspace's "best" pointer: `best.json`, the published best model of the campaign so far.

An iteration's publish stage moves it (inside the iteration's transaction, so a failed check
after it puts the previous one back); the `publish` deployment reads it to push the best model.
Iterations running at the same time move it under a file lock, and only upwards.

`best_scored_in_full` is the rule for which iteration is the best one, shared by the campaign's
record and the planner's view of it.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from internflow.files import write_atomic
from internflow.schemas import EvalResult, IterationResult

__all__ = ["BEST_POINTER", "BestPointer", "best_scored_in_full", "locked", "read_pointer", "write_pointer"]

BEST_POINTER = "best.json"


class BestPointer(BaseModel):
    model_config = ConfigDict(frozen=True)

    campaign_id: str | None = Field(None, description="The campaign flow run whose best this is.")
    index: int = Field(description="The iteration.")
    model_path: str
    run_name: str
    accuracy: float = Field(description="Its score on the split iterations are chosen on (dev).")
    n: int
    baseline_accuracy: float
    flow_run_id: str | None = None
    hub_repo_id: str | None = None
    hub_revision: str | None = Field(None, description="The Hub branch this model was pushed to, if any.")

    @property
    def gain_points(self) -> float:
        return 100 * (self.accuracy - self.baseline_accuracy)


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """The pointer to oneself while reading and moving it (threads and processes of this machine)."""
    with (root / ".best.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_pointer(root: Path) -> BestPointer | None:
    path = root / BEST_POINTER
    return BestPointer.model_validate_json(path.read_text()) if path.is_file() else None


def write_pointer(root: Path, pointer: BestPointer | None) -> None:
    """Replace the pointer in one step (None removes it)."""
    path = root / BEST_POINTER
    if pointer is None:
        path.unlink(missing_ok=True)
        return
    write_atomic(path, pointer.model_dump_json(indent=2))


def best_scored_in_full(history: Iterable[IterationResult], baseline: EvalResult) -> IterationResult | None:
    """The most accurate healthy iteration scored on the whole eval subset (a screen's score is on
    fewer items, so not comparable)."""
    whole = [
        r for r in history if r.diagnosis.verdict != "failed" and r.evaluation.n >= baseline.n and r.blocked is None
    ]
    return max(whole, key=lambda r: r.evaluation.accuracy, default=None)
