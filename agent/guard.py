"""The doom-loop guard: spots a campaign going round in circles and makes it change direction.

It reads the campaign's iteration records (built from Prefect's run history, see agent/digest.py)
and reviews each proposal before it runs.  Detections:

- repeat: the proposal's canonical signature was already run;
- cycle: the signatures, with the proposal appended, end in a loop of length 2-5;
- stall: N iterations since the last improvement (or the last forced change), and the proposal
  stays in a direction already tried in that stretch (promoting one of its screens to a full run
  is exempt);
- recurring failure: one failure class seen again and again recently, and the proposal is in the
  direction those failures came from.

A flagged proposal is rejected (the planner is re-asked with the reasons); a second flagged
proposal gets a forced change of direction (another learning-rate region, dataset or method).
Every window starts after the last improvement or intervention, so the guard goes quiet once
the campaign has moved on.
"""

from __future__ import annotations

import math
import typing
from collections import Counter
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from internflow.schemas import IterationParams

__all__ = [
    "Detection",
    "DoomLoopGuard",
    "GuardConfig",
    "GuardReview",
    "IterationRecord",
    "allowed_methods",
    "direction",
    "lr_region",
    "signature",
]


def allowed_methods() -> tuple[str, ...]:
    """The training methods IterationParams accepts, read from its `method` annotation."""
    return tuple(typing.get_args(IterationParams.model_fields["method"].annotation))


def lr_region(learning_rate: float) -> str:
    """The learning rate's decade, e.g. 3e-4 → '1e-4' region (rounding in log space)."""
    return f"1e{round(math.log10(learning_rate))}"


def signature(params: IterationParams) -> str:
    """The proposal's canonical identity, `IterationParams.signature` (the search policy uses the same)."""
    return params.signature()


def direction(params: IterationParams) -> str:
    """The coarse region a proposal explores: method (self-distilled or not), data, learning-rate
    decade, LoRA or not."""
    method = f"{params.method}+distill" if params.self_distill_k else params.method
    return f"{method}|{'+'.join(sorted(params.datasets))}|lr~{lr_region(params.learning_rate)}|" + (
        "lora" if params.use_lora else "full"
    )


class IterationRecord(BaseModel):
    """One finished or failed iteration as the planner's memory sees it (from Prefect + results)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    params: IterationParams
    rationale: str = ""
    state: str = Field(description="Prefect state type of the iteration's flow run, e.g. COMPLETED, FAILED.")
    accuracy: float | None = None
    gain: float | None = Field(None, description="Accuracy gain over the baseline on the items it was scored on.")
    eval_n: int | None = Field(None, description="Eval items it was scored on (fewer for a screen).")
    verdict: str | None = None
    failure_class: str | None = Field(None, description="Exception type or diagnosis kind (nan_loss, divergence).")
    error: str = ""
    guard_action: str = "accept"
    flow_run_id: str | None = None
    wall_s: float | None = None
    artifacts: tuple[str, ...] = ()

    @property
    def signature(self) -> str:
        return signature(self.params)

    def gain_over(self, baseline: float) -> float | None:
        """The gain on its own items when known (a screen), else accuracy minus the baseline's."""
        if self.gain is not None:
            return self.gain
        return None if self.accuracy is None else self.accuracy - baseline

    @property
    def failed(self) -> bool:
        return self.state != "COMPLETED" or self.verdict == "failed"


class GuardConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stall_patience: int = Field(3, ge=1, description="Iterations without improvement before a stall.")
    min_improvement: float = Field(0.01, ge=0, description="Accuracy gain that counts as an improvement.")
    max_cycle: int = Field(5, ge=2, description="Longest cycle of signatures looked for.")
    failure_repeats: int = Field(2, ge=2, description="Same failure class this often → recurring.")
    failure_window: int = Field(6, ge=2, description="Recent iterations searched for recurring failures.")


class Detection(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["repeat", "cycle", "stall", "recurring_failure"]
    message: str
    directions: tuple[str, ...] = Field((), description="Directions to steer away from.")


class GuardReview(BaseModel):
    model_config = ConfigDict(frozen=True)

    detections: tuple[Detection, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.detections

    def reasons(self) -> str:
        return "; ".join(f"{d.kind}: {d.message}" for d in self.detections)


class DoomLoopGuard:
    def __init__(self, config: GuardConfig | None = None) -> None:
        self.config = config or GuardConfig()

    def review(self, params: IterationParams, records: list[IterationRecord], baseline: float) -> GuardReview:
        records = sorted(records, key=lambda r: r.index)
        found = [
            *self._repeat(params, records),
            *self._cycle(params, records),
            *self._stall(params, records, baseline),
            *self._recurring_failure(params, records),
        ]
        return GuardReview(detections=tuple(found))

    def force_change(
        self,
        params: IterationParams,
        records: list[IterationRecord],
        review: GuardReview,
        datasets_by_method: Mapping[str, tuple[str, ...]],
    ) -> IterationParams | None:
        """The nearest untried proposal in a direction none of the detections point at, or None."""
        avoid = {direction(params)} | {d for det in review.detections for d in det.directions}
        tried = {r.signature for r in records}
        for candidate in _direction_changes(params, datasets_by_method):
            if direction(candidate) not in avoid and signature(candidate) not in tried:
                return candidate
        return None

    # -- detections -------------------------------------------------------------------------

    def _repeat(self, params: IterationParams, records: list[IterationRecord]) -> list[Detection]:
        same = [r for r in records if r.signature == signature(params)]
        if not same:
            return []
        last = same[-1]
        what = f"failed ({last.failure_class or last.state})" if last.failed else f"scored {last.accuracy:.1%}"
        return [
            Detection(
                kind="repeat",
                message=f"identical to iteration {last.index}, which {what}; re-running it teaches nothing",
                directions=(direction(params),),
            )
        ]

    def _cycle(self, params: IterationParams, records: list[IterationRecord]) -> list[Detection]:
        seq = [r.signature for r in records] + [signature(params)]
        for length in range(2, self.config.max_cycle + 1):
            if len(seq) < 2 * length:
                break
            loop = seq[-length:]
            if loop == seq[-2 * length : -length] and len(set(loop)) > 1:
                members = records[-length:]
                return [
                    Detection(
                        kind="cycle",
                        message=f"proposals cycle with period {length} (iterations "
                        f"{', '.join(str(r.index) for r in members)} and again)",
                        directions=tuple({direction(r.params) for r in members}),
                    )
                ]
        return []

    def _since_last_change(self, records: list[IterationRecord], baseline: float) -> list[IterationRecord]:
        """Iterations after the last improvement or forced change of direction."""
        best_gain, start = 0.0, 0
        for position, record in enumerate(records):
            gain = None if record.failed else record.gain_over(baseline)
            improved = gain is not None and gain > best_gain + self.config.min_improvement
            if improved and gain is not None:
                best_gain = gain
            if improved or record.guard_action == "force":
                start = position + 1
        return records[start:]

    def _stall(self, params: IterationParams, records: list[IterationRecord], baseline: float) -> list[Detection]:
        stretch = self._since_last_change(records, baseline)
        # Promoting a screen of this stretch to its full run is the screen's verdict, not a circle.
        if any(r.params.screened and signature(r.params.in_full()) == signature(params) for r in stretch):
            return []
        if len(stretch) < self.config.stall_patience:
            return []
        stalled = {direction(r.params) for r in stretch}
        if direction(params) not in stalled:
            return []
        return [
            Detection(
                kind="stall",
                message=f"{len(stretch)} iterations ({stretch[0].index}-{stretch[-1].index}) without an "
                f"improvement over {self.config.min_improvement:.1%}, and this proposal stays in "
                f"direction {direction(params)}",
                directions=tuple(sorted(stalled)),
            )
        ]

    def _recurring_failure(self, params: IterationParams, records: list[IterationRecord]) -> list[Detection]:
        recent = records[-self.config.failure_window :]
        # A forced change starts a new chapter: older failures no longer speak against the new direction.
        forced = [i for i, r in enumerate(recent) if r.guard_action == "force"]
        if forced:
            recent = recent[forced[-1] :]
        classes = Counter(r.failure_class for r in recent if r.failed and r.failure_class)
        found = []
        for failure_class, count in classes.items():
            failing = [r for r in recent if r.failed and r.failure_class == failure_class]
            directions = {direction(r.params) for r in failing}
            if count >= self.config.failure_repeats and direction(params) in directions:
                found.append(
                    Detection(
                        kind="recurring_failure",
                        message=f"{failure_class} happened {count} times recently (iterations "
                        f"{', '.join(str(r.index) for r in failing)}) in direction {direction(params)}",
                        directions=tuple(sorted(directions)),
                    )
                )
        return found


def _direction_changes(
    params: IterationParams, datasets_by_method: Mapping[str, tuple[str, ...]]
) -> list[IterationParams]:
    """Single moves that leave the current direction, nearest first: learning-rate region, data,
    method (with data that can train it: another method on this method's data would only fail)."""
    candidates: list[dict[str, object]] = []
    for factor in (0.1, 10.0, 0.01, 100.0):
        candidates.append({"learning_rate": params.learning_rate * factor})
    for name in datasets_by_method.get(params.method, ()):
        if (name,) != tuple(params.datasets):
            candidates.append({"datasets": (name,)})
        if name not in params.datasets:
            candidates.append({"datasets": (*params.datasets, name)})
    candidates.append({"use_lora": not params.use_lora})
    for method in allowed_methods():
        if method != params.method and datasets_by_method.get(method):
            candidates.append({"method": method, "datasets": datasets_by_method[method][:1], "dataset_weights": ()})
    valid = []
    for update in candidates:
        try:  # re-validate: a move that leaves the search space's bounds is dropped
            valid.append(IterationParams.model_validate(params.model_dump() | update | {"init_from": "base"}))
        except ValueError:
            continue
    return valid
