"""The planner interface: what a planner sees and what it must do (planners are built by name in
agent/registry.py, recipes loaded by internflow.recipes).

A planner sees the campaign so far (`PlannerState`) and proposes the next iteration's parameters
as a validated `IterationParams`, with its rationale, or None when nothing is left worth trying.
It can only emit parameters: the base model, benchmark and evaluator are not in its reach.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, model_validator

from internflow.agent.guard import IterationRecord
from internflow.best import best_scored_in_full
from internflow.schemas import (
    CampaignConfig,
    DataSource,
    EvalResult,
    FailedIteration,
    IterationParams,
    IterationResult,
    LiteratureReport,
    Proposal,
)

__all__ = ["Planner", "PlannerState"]


class PlannerState(BaseModel):
    model_config = ConfigDict(frozen=True)

    config: CampaignConfig
    baseline: EvalResult
    history: tuple[IterationResult, ...]
    failures: tuple[FailedIteration, ...] = ()
    literature: LiteratureReport | None = None
    datasets: tuple[str, ...]  # catalog datasets meant for this benchmark
    default_datasets: tuple[str, ...]
    # Per training method, the datasets that can train it and pass the quality and decontamination
    # gate (screened once at preflight): moves never pick data the dataset stage would refuse.
    datasets_by_method: dict[str, tuple[str, ...]] = {}
    # The vetted training datasets behind those ids (Hub ones pinned), with discovery's evidence.
    sources: tuple[DataSource, ...] = ()
    # Filled in by the plan task: the digest of Prefect's run history, and the guard's feedback
    # (with the canonical signatures it rejected) when it re-asks the planner.
    digest: str = ""
    records: tuple[IterationRecord, ...] = ()
    feedback: str = ""
    rejected: tuple[str, ...] = ()
    # Proposals already chosen for this planning round: they run alongside the next one, unmeasured,
    # so the next proposal must differ from them and the budget counts them as spent.
    pending: tuple[IterationParams, ...] = ()

    @model_validator(mode="after")
    def _no_test_scores(self) -> PlannerState:
        """Structural, not a convention: a planner never sees a test-split score (unless the campaign
        chooses on test, which every report then marks optimistic)."""
        if self.config.select_on == "test":
            return self
        scored = (self.baseline, *(r.evaluation for r in self.history))
        leaked = [e.label for e in scored if e.split == "test"]
        if leaked:
            raise ValueError(f"planner state: test-split scores must never reach the planner, got {leaked}")
        return self

    def datasets_for(self, method: str) -> tuple[str, ...]:
        """The datasets a proposal with this method may use (all of them when not screened)."""
        return self.datasets_by_method.get(method, ()) if self.datasets_by_method else self.datasets

    def best_iteration(self) -> IterationResult | None:
        return best_scored_in_full(self.history, self.baseline)


class Planner(Protocol):
    """Proposes the next iteration, or None when nothing is left; a planner may also say why with
    `stop_reason(state) -> str` (the campaign's stop reason then names it)."""

    def propose(self, state: PlannerState) -> Proposal | None: ...
