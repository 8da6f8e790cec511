"""The training methods by name: `METHODS` (name → module path) and `get_method`.

A method module is imported only when its method is used (TRL and torch are heavy), by its path:
nothing here imports a method module at the top, and method modules do not import this one (their
`TrainingMethod` record is `configs`'), so the package's imports run one way.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from internflow.training.configs import TrainingMethod

__all__ = ["METHODS", "UnknownMethodError", "get_method"]

# name → module; each module's `METHOD` is its TrainingMethod.
METHODS: dict[str, str] = {
    "sft": "internflow.training.sft",
    "dpo": "internflow.training.dpo",
    "grpo": "internflow.training.grpo",
}


class UnknownMethodError(ValueError):
    pass


def get_method(name: str) -> TrainingMethod:
    """The method's TrainingMethod (its module imported now); UnknownMethodError lists the known ones."""
    if name not in METHODS:
        raise UnknownMethodError(f"method: unknown training method {name!r}; known: {', '.join(sorted(METHODS))}")
    method: TrainingMethod = importlib.import_module(METHODS[name]).METHOD
    return method
