"""File writes that readers never see half done."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a staging file beside `path`, then rename it over `path` in one step.

    Iterations running at the same time can write the same content-addressed file (the same
    training mix) while another's training child reads it: a plain write truncates it first."""
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)
