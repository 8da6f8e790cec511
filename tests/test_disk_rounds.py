"""The disk check and the full-disk stop for a round of iterations run at the same time: their
needs add up, and a full disk in any of them (not only the last recorded) stops the campaign."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from internflow.retention import DiskBudget
from internflow.schemas import FailedIteration, Finding, IterationParams, IterationResult
from internflow.workspace import Workspace

GIB = 2**30


@dataclass
class _Record:
    failures: list[FailedIteration] = field(default_factory=list)
    history: list[IterationResult] = field(default_factory=list)
    done: int = 0

    def best(self) -> IterationResult | None:
        return None


def _budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free: int) -> DiskBudget:
    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"\0" * 1024)  # 7 KiB needed per full fine-tune
    workspace = Workspace.open(tmp_path / "ws")
    real = shutil.disk_usage

    def usage(path):  # type: ignore[no-untyped-def]
        return real(path)._replace(free=free)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    return DiskBudget(workspace, str(base))


def test_a_round_of_two_that_the_disk_holds_once_but_not_twice_is_stopped_before_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = _budget(tmp_path, monkeypatch, free=10 * 1024)  # room for one iteration's 7 KiB, not two
    assert disk.before_iteration(1) is None
    reason = disk.before_iteration(2)
    assert reason is not None and reason.startswith("disk: the next 2 iterations need ~"), reason
    assert "each)" in reason


def test_a_full_disk_in_the_first_iteration_of_a_round_stops_the_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = _budget(tmp_path, monkeypatch, free=100 * GIB)
    full = Finding(kind="disk_full", severity="error", message="no space left on device")
    params = IterationParams(datasets=("d",))
    failed = FailedIteration(index=1, params=params, error="OSError: ENOSPC", findings=(full,))
    record = _Record(failures=[failed], done=2)  # iteration 2 of the round finished; 1 ran out of disk
    disk.before_iteration(2)
    reason = disk.after_iteration(record, 2)
    assert reason is not None and reason.startswith("disk full: iteration 1 could not write"), reason
    assert disk.after_iteration(_Record(failures=[failed], done=4), 2) is None, "an earlier round's failure"
