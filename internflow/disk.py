"""Disk space: how much a folder holds, how much is free, and whether an error means the disk is full.

A full disk shows up in many dresses: `OSError(ENOSPC)` from Python, safetensors' Rust
`StorageFull`, SQLite's "database or disk is full", a quota's `EDQUOT`.  `is_disk_full` reads
all of them, through the exception's chain, so a full disk is reported as what it is instead of
as whatever library happened to be writing.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

__all__ = ["DISK_FULL_TEXT", "folder_bytes", "free_bytes", "gib", "is_disk_full"]

DISK_FULL_TEXT = re.compile(
    r"No space left on device|StorageFull|Disk quota exceeded|database or disk is full|ENOSPC|out of disk space"
    r"|Not enough disk space",  # datasets' own check before it writes a cache
    re.IGNORECASE,
)


def is_disk_full(error: BaseException | str) -> bool:
    """Whether `error` (or any exception it was raised from) says the disk or a quota is full."""
    if isinstance(error, str):
        return bool(DISK_FULL_TEXT.search(error))
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if DISK_FULL_TEXT.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def free_bytes(path: str | Path) -> int:
    """Free bytes on the file system holding `path` (its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def folder_bytes(path: str | Path) -> int:
    """Bytes of the files under `path` (0 when it does not exist); links are not followed."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed while we walked
                continue
    return total


def gib(n_bytes: float) -> str:
    """'2.1 GB' (GiB, one decimal; MB below a tenth of one)."""
    if n_bytes < 0.1 * 2**30:
        return f"{n_bytes / 2**20:.0f} MB"
    return f"{n_bytes / 2**30:.1f} GB"
