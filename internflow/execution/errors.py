"""The error every execution backend raises for a failed training run (its own module so that the
backends can import it without importing the package that picks them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from internflow.schemas import TrainFailure

__all__ = ["TrainingFailed"]


class TrainingFailed(RuntimeError):
    """A training run failed; `failure` says why when the run could tell (e.g. out of memory)."""

    def __init__(self, message: str, failure: TrainFailure | None = None) -> None:
        super().__init__(message)
        self.failure = failure
