"""Bounded disk for a campaign: what it keeps, whether the next iteration fits, and a full disk as
a stop reason rather than a crash.

- **Retention** (after each iteration): a finished training run's optimizer checkpoints
  (`checkpoints/<run>/checkpoint-*`, ~3× the model's size) and its datasets cache are dropped — its
  model folder is what later stages read.  Model folders are kept for the best iteration and the
  last `keep_last_models` iterations; the others are deleted, and the run is marked pruned
  (`checkpoints/<run>/pruned`, a count) so that the train task's cache no longer serves a result
  whose model is gone (asked again, it trains anew).  Only folders inside the workspace are touched.
- **Free space** (before each iteration): the next iteration is expected to need twice the most
  any iteration so far added to the workspace (its checkpoint is written while the previous one
  still exists), or, before the first, 7× the base model's weights (a full fine-tune's
  checkpoint holds the weights and Adam's two moments, twice at a save, plus the final model).
- **A full disk** during an iteration fails that iteration (`disk_full` finding) and stops the
  campaign with a stop reason that says so, after pruning and dropping what can be rebuilt
  (lighteval work files, datasets caches, half-saved models) and releasing the workspace's
  `.disk-reserve` (up to 32 MB set aside when the campaign starts, so that its last writes — the
  run history's database, report.json — find room even when another process took every byte).
  Report writes that still fail keep the last `report.json`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from internflow.disk import folder_bytes, free_bytes, gib

if TYPE_CHECKING:
    from internflow.schemas import FailedIteration, IterationResult
    from internflow.workspace import Workspace

__all__ = ["PRUNED_FILE", "RESERVE_FILE", "CampaignRecord", "DiskBudget", "prune", "pruned_count"]

PRUNED_FILE = "pruned"
RESERVE_FILE = ".disk-reserve"
_RESERVE_BYTES = 32 * 2**20
_PEAK_OVER_GROWTH = 2.0
_FULL_FINE_TUNE_OVER_WEIGHTS = 7.0


class CampaignRecord(Protocol):
    """What retention reads of a campaign's record (the campaign flow's `CampaignLedger`)."""

    @property
    def history(self) -> Sequence[IterationResult]: ...
    @property
    def failures(self) -> Sequence[FailedIteration]: ...
    @property
    def done(self) -> int: ...
    def best(self) -> IterationResult | None: ...


def pruned_count(checkpoint_dir: str | Path) -> str | None:
    """How often this run's model was deleted by the retention policy (None: never) — part of the
    train task's cache key."""
    try:
        return (Path(checkpoint_dir) / PRUNED_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def prune(ledger: CampaignRecord, workspace: Workspace, keep_last: int) -> int:
    """Apply the retention policy to the campaign's finished iterations; returns the bytes freed."""
    best = ledger.best()
    keep = {r.train.model_path for r in ledger.history[-keep_last:]} if keep_last > 0 else set()
    keep |= {best.train.model_path} if best else set()
    models_root = workspace.models_dir.resolve()
    checkpoints_root = workspace.checkpoints_dir.resolve()
    freed = 0
    for result in ledger.history:
        run_dir = Path(result.train.checkpoint_dir).resolve()
        if run_dir.parent == checkpoints_root:
            for folder in [*run_dir.glob("checkpoint-*"), run_dir / "hf-datasets"]:
                freed += _remove(folder)
        model = Path(result.train.model_path).resolve()
        if result.train.model_path not in keep and model.parent == models_root and model.is_dir():
            freed += _remove(model)
            if run_dir.parent == checkpoints_root and run_dir.is_dir():
                count = int(pruned_count(run_dir) or 0) + 1
                (run_dir / PRUNED_FILE).write_text(str(count), encoding="utf-8")
    return freed


def _remove(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    size = folder_bytes(folder)
    shutil.rmtree(folder, ignore_errors=True)
    return size


@dataclass
class DiskBudget:
    """One campaign's disk accounting: call `before_iteration` and `after_iteration` around each."""

    workspace: Workspace
    base_model: str
    keep_last: int = 2
    growth: list[int] = field(default_factory=list)  # bytes each iteration added, before pruning
    _before: int | None = None

    def __post_init__(self) -> None:
        self._reserve()

    def _reserve(self) -> None:
        """Set aside up to 32 MB (a tenth of the free space at most), released on a full disk."""
        path = self.workspace.root / RESERVE_FILE
        if path.is_file():
            return
        size = min(_RESERVE_BYTES, free_bytes(self.workspace.root) // 10)
        try:
            with path.open("wb") as reserve:
                try:
                    os.posix_fallocate(reserve.fileno(), 0, size)
                except OSError:  # a file system without fallocate: real bytes, then
                    for _ in range(size // 2**20):
                        reserve.write(b"\0" * 2**20)
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()

    def needed_bytes(self) -> tuple[int, str] | None:
        """(bytes the next iteration is expected to need, how that was estimated), or None."""
        if self.growth:
            return int(_PEAK_OVER_GROWTH * max(self.growth)), f"{_PEAK_OVER_GROWTH:g}× the most an iteration added"
        weights = sum(p.stat().st_size for p in Path(self.base_model).glob("*.safetensors")) or sum(
            p.stat().st_size for p in Path(self.base_model).glob("*.bin")
        )
        if not weights:  # a Hub id: nothing measured yet
            return None
        how = f"{_FULL_FINE_TUNE_OVER_WEIGHTS:g}× the base model's weights"
        return int(_FULL_FINE_TUNE_OVER_WEIGHTS * weights), how

    def before_iteration(self, iterations: int = 1) -> str | None:
        """The stop reason when the workspace's disk cannot hold the next round of `iterations`
        (run at the same time, so their needs add up), else None."""
        self._before = folder_bytes(self.workspace.root)
        estimate = self.needed_bytes()
        if estimate is None:
            return None
        needed, how = estimate[0] * iterations, estimate[1]
        free = free_bytes(self.workspace.root)
        if free >= needed:
            return None
        what = "the next iteration needs" if iterations == 1 else f"the next {iterations} iterations need"
        each = "" if iterations == 1 else " each"
        return f"disk: {what} ~{gib(needed)} ({how}{each}), {gib(free)} free in {self.workspace.root}"

    def _drop_caches(self) -> None:
        """What can be rebuilt: lighteval's work files, datasets caches, half-saved model folders."""
        root = self.workspace.root
        for folder in [root / "eval-work", root / "hf-cache", *root.glob("checkpoints/*/hf-datasets")]:
            _remove(folder)
        for staging in root.glob("models/*.partial"):
            _remove(staging)

    def after_iteration(self, ledger: CampaignRecord, iterations: int = 1) -> str | None:
        """Measure what the round of `iterations` added (per iteration), prune, and return the stop
        reason when one of them failed for want of disk space."""
        if self._before is not None:
            self.growth.append(max(0, folder_bytes(self.workspace.root) - self._before) // max(1, iterations))
        prune(ledger, self.workspace, self.keep_last)
        this_round = [f for f in ledger.failures if f.index > ledger.done - iterations]
        full = [f for f in this_round if any(finding.kind == "disk_full" for finding in f.findings)]
        if not full:
            return None
        last = full[-1]
        self._drop_caches()  # room for the campaign's last words (run history, report.json, the report)
        (self.workspace.root / RESERVE_FILE).unlink(missing_ok=True)
        return (
            f"disk full: iteration {last.index} could not write to {self.workspace.root} "
            f"({gib(free_bytes(self.workspace.root))} free after pruning)"
        )
