"""The one search space every planner proposes in.

The deterministic search policy's moves, the bundled planner's candidates (those same moves,
ranked by a local model) and an LLM planner's JSON answer all land here: a proposal is the anchor
(the best iteration so far, or the recipe) with some `IterationParams` fields changed, and a
changed field must lie inside `SearchSpace.bounds` (narrower than the schema's limits where a
planner needs restraining) and pass the schema.  The fields a planner may set, and those bounds,
are read from `IterationParams` itself (its `Planned` field markers), so a new hyper-parameter (a
schema field, its TRL mapping and a recipe value) is in every planner's space without an edit here.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from internflow.agent.guard import allowed_methods
from internflow.schemas import IterationParams, Planned

__all__ = [
    "NOT_PLANNED",
    "PLANNED",
    "PlannerOutput",
    "PlannerOutputError",
    "SearchSpace",
    "planned_bounds",
    "registered_rewards",
]


def _planned(name: str) -> Planned | None:
    """The field's `Planned` marker, or None for a field no planner sets (the seed, the OOM floor)."""
    return next((m for m in IterationParams.model_fields[name].metadata if isinstance(m, Planned)), None)


PLANNED: tuple[str, ...] = tuple(name for name in IterationParams.model_fields if _planned(name) is not None)
NOT_PLANNED = frozenset(IterationParams.model_fields) - set(PLANNED)


def planned_bounds() -> dict[str, tuple[float, float]]:
    """The planner's range of each planned numeric field, as declared on IterationParams."""
    return {name: marker.bounds for name in PLANNED if (marker := _planned(name)) and marker.bounds is not None}


class PlannerOutputError(ValueError):
    """The model's answer is not a usable proposal; the message says why (fed back for repair)."""


def registered_rewards() -> tuple[str, ...]:
    """The reward functions a planner may name: registered ones only (never a code path)."""
    from internflow.training.rewards import REWARDS

    return tuple(sorted(REWARDS))


class PlannerOutput(BaseModel):
    """What an LLM may set: any planned IterationParams field (read from the schema) plus its
    reasons.  A field that is not a planned parameter (the base model, the benchmark...) is refused."""

    model_config = ConfigDict(extra="allow")

    rationale: str = Field(min_length=1)
    evidence: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _only_planned_fields(self) -> PlannerOutput:
        unknown = sorted(set(self.model_extra or {}) - set(PLANNED))
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not a parameter a planner may set; it may set {', '.join(PLANNED)}"
            )
        return self

    def changes(self) -> dict[str, Any]:
        """The parameters it sets (null values left out: they keep the anchor's)."""
        return {name: value for name, value in (self.model_extra or {}).items() if value is not None}


def _choices(annotation: object) -> tuple[object, ...]:
    """The values of a Literal or bool field; () for any other type."""
    if annotation is bool:
        return (True, False)
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return ()


def _schema_range(name: str) -> tuple[float | None, float | None]:
    low = high = None
    for rule in IterationParams.model_fields[name].metadata:
        low = getattr(rule, "ge", None) if getattr(rule, "ge", None) is not None else low
        low = getattr(rule, "gt", None) if getattr(rule, "gt", None) is not None else low
        high = getattr(rule, "le", None) if getattr(rule, "le", None) is not None else high
    return low, high


class SearchSpace(BaseModel):
    """The bounded region every planner proposes in (ranges inclusive)."""

    model_config = ConfigDict(frozen=True)

    methods: tuple[str, ...] = Field(default_factory=allowed_methods)
    datasets: tuple[str, ...]
    datasets_by_method: dict[str, tuple[str, ...]] = {}  # empty: every dataset for every method
    rewards: tuple[str, ...] = Field(default_factory=registered_rewards)
    # Narrower than the schema where a planner needs restraining on a small budget (declared on the
    # IterationParams field); any other numeric field may take its whole schema range.
    bounds: dict[str, tuple[float, float]] = Field(default_factory=planned_bounds)

    @classmethod
    def for_state(cls, state: Any) -> SearchSpace:
        """The space of a campaign (a `PlannerState`): its vetted datasets per method."""
        return cls(datasets=state.datasets, datasets_by_method=state.datasets_by_method)

    def datasets_for(self, method: str) -> tuple[str, ...]:
        return self.datasets_by_method.get(method, ()) if self.datasets_by_method else self.datasets

    def describe(self) -> str:
        """Every planned field with its range or choices and the schema's description of it."""
        per_method = "; ".join(f"{m}: {list(self.datasets_for(m))}" for m in self.methods)
        lines = [
            f"- method: one of {list(self.methods)}",
            f"- datasets: a non-empty list, mixed, of datasets that can train the method ({per_method})",
            f"- reward_funcs: a non-empty list of {list(self.rewards)} — GRPO: 'exact_answer' rewards what the "
            "task's own judge accepts",
        ]
        for name in PLANNED:
            if name in ("method", "datasets", "reward_funcs"):
                continue
            field = IterationParams.model_fields[name]
            about = (field.description or "").rstrip(".")
            choices = _choices(field.annotation)
            if choices:
                allowed = " or ".join(str(c).lower() if isinstance(c, bool) else f'"{c}"' for c in choices)
            elif name == "dataset_weights":
                allowed = "a list of weights > 0"
            else:
                low, high = self.bounds.get(name) or _schema_range(name)
                allowed = f"{low:g} to {high:g}" if low is not None and high is not None else "a number"
            lines.append(f"- {name}: {allowed}" + (f" — {about}" if about else ""))
        return "\n".join(lines)

    def _problems(self, changes: dict[str, Any]) -> list[str]:
        """What is wrong with these changed values, before the schema sees them."""
        problems = [
            f"{name}: expected a list, got {changes[name]!r}"
            for name in ("datasets", "reward_funcs", "dataset_weights")
            if name in changes and not isinstance(changes[name], list | tuple)
        ]
        if problems:
            return problems
        if "method" in changes and changes["method"] not in self.methods:
            problems.append(f"method: {changes['method']!r} is not one of {list(self.methods)}")
        if "datasets" in changes:
            unknown = [d for d in changes["datasets"] if d not in self.datasets]
            if unknown or not changes["datasets"]:
                problems.append(f"datasets: {unknown or 'empty'} not in the catalog {list(self.datasets)}")
        if "reward_funcs" in changes:
            unknown = [r for r in changes["reward_funcs"] if r not in self.rewards]
            if unknown or not changes["reward_funcs"]:
                problems.append(f"reward_funcs: {unknown or 'empty'} not among the registered {list(self.rewards)}")
        for name, (low, high) in self.bounds.items():
            value = changes.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and not low <= value <= high:
                problems.append(f"{name}: {value} is outside {low:g}..{high:g}")
        return problems

    def contains(self, params: IterationParams, anchor: IterationParams | None = None) -> bool:
        """Whether `params` lies in the space: every field changed from `anchor` (every bounded
        field when there is none) inside its bounds, and its datasets able to train its method.
        Rewards are checked only where a planner names them (`apply`): recipes may name code."""
        values = params.model_dump()
        before = anchor.model_dump() if anchor is not None else {}
        changed = {name: value for name, value in values.items() if name not in before or before[name] != value}
        changed.pop("reward_funcs", None)
        changed.setdefault("datasets", params.datasets)
        return not self._problems(changed) and all(d in self.datasets_for(params.method) for d in params.datasets)

    def apply(self, anchor: IterationParams, output: PlannerOutput) -> IterationParams:
        """The anchor with the output's fields set, checked against these bounds and the schema.
        Settings the change makes meaningless are reset unless the output sets them too: the mix
        weights when the datasets change, self-distillation when the method is no longer SFT."""
        changes = output.changes()
        if "datasets" in changes and isinstance(changes["datasets"], list | tuple):
            changes["datasets"] = tuple(changes["datasets"])
            changes.setdefault("dataset_weights", ())
        if changes.get("method", "sft") != "sft":
            changes.setdefault("self_distill_k", 0)
        problems = self._problems(changes)
        if problems:
            raise PlannerOutputError("; ".join(problems))
        try:
            params = IterationParams.model_validate(anchor.model_dump() | changes)
        except ValidationError as error:
            raise PlannerOutputError(str(error).replace("\n", " ")) from error
        unfit = [d for d in params.datasets if d not in self.datasets_for(params.method)]
        if unfit:
            usable = list(self.datasets_for(params.method))
            raise PlannerOutputError(f"datasets: {unfit} cannot train {params.method}; use some of {usable}")
        return params
