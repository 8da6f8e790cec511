"""API tokens from Prefect `Secret` blocks as well as the environment.

A variable set in the environment wins; one that is not is read from its Secret block, when the
Prefect server has one, for the duration of a campaign or iteration run (then removed again), so
that huggingface_hub, datasets and the planner backends find it where they already look:

    HF_TOKEN                      block `internflow-hf-token`
    INTERNFLOW_PLANNER_API_KEY    block `internflow-planner-api-key`

Create one with `prefect block create secret` (UI) or `Secret(value=...).save("internflow-hf-token")`.
Values are never logged, written to an artifact, a report, a card or trackio: only the names of
the variables that came from blocks are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from internflow.narration import run_logger

__all__ = ["SECRET_BLOCKS", "read_secret_block", "secrets_from_blocks"]

SECRET_BLOCKS = {"HF_TOKEN": "internflow-hf-token", "INTERNFLOW_PLANNER_API_KEY": "internflow-planner-api-key"}

logger = logging.getLogger(__name__)


def read_secret_block(name: str) -> str | None:
    """The value of the Prefect Secret block `name`, or None when there is none (or no server)."""
    from prefect.blocks.system import Secret

    load: Any = Secret.load  # dispatches sync or async; asked for sync here
    try:
        value = load(name, _sync=True).get()
    except ValueError:  # no block of that name
        return None
    except Exception as error:  # the API is unreachable: the environment is all there is
        logger.warning("Secret block %s not readable (%s); using the environment only", name, type(error).__name__)
        return None
    return str(value) if value else None


@contextmanager
def secrets_from_blocks() -> Iterator[tuple[str, ...]]:
    """Fill each unset variable of SECRET_BLOCKS from its block for the duration; yields the names
    of the variables filled (not their values)."""
    filled: list[str] = []
    for variable, block in SECRET_BLOCKS.items():
        if os.environ.get(variable):
            continue
        value = read_secret_block(block)
        if value:
            os.environ[variable] = value
            filled.append(variable)
    if filled:
        run_logger(logger).info("tokens from Prefect Secret blocks: %s", ", ".join(filled))  # names, never values
    try:
        yield tuple(filled)
    finally:
        for variable in filled:
            os.environ.pop(variable, None)
