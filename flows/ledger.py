"""The campaign's running record: baseline, finished and failed iterations, the best so far.

Kept out of the flow so the flow body stays a short list of stage calls; the planner state, the
next iteration's context and the report are all derived from this one record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from internflow.agent.planner import PlannerState
from internflow.best import best_scored_in_full
from internflow.diagnostics.failures import findings_from_failure
from internflow.schemas import (
    CampaignConfig,
    CampaignReport,
    DataPlan,
    EvalResult,
    FailedIteration,
    IterationContext,
    IterationResult,
    Proposal,
    ServedModel,
)

if TYPE_CHECKING:
    from prefect.states import State

__all__ = ["CampaignLedger"]


@dataclass
class CampaignLedger:
    config: CampaignConfig
    workspace: str
    base_model: str
    base_fingerprint: str
    baseline: EvalResult
    eval_server: ServedModel | None = None
    evaluator: str = ""
    data: DataPlan | None = None  # the vetted training data the planner may choose from
    dev_source: str = ""  # where the split iterations are chosen on came from
    test_baseline: EvalResult | None = None  # scored once, after the search
    test_best: EvalResult | None = None
    started: float = field(default_factory=time.monotonic)
    history: list[IterationResult] = field(default_factory=list)
    failures: list[FailedIteration] = field(default_factory=list)
    resumed_from: tuple[str, ...] = ()  # killed runs of this campaign whose record it continues

    @property
    def done(self) -> int:
        return len(self.history) + len(self.failures)

    @property
    def spent_usd(self) -> float:
        """Training hours of the finished iterations at the configured hardware price."""
        return sum(r.train.runtime_s for r in self.history) / 3600 * self.config.gpu_usd_per_hour

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def best(self) -> IterationResult | None:
        """The best iteration scored in full, if it beat the untouched base model (else there is none)."""
        best = best_scored_in_full(self.history, self.baseline)
        return best if best is not None and best.evaluation.accuracy > self.baseline.accuracy else None

    def planner_state(self) -> PlannerState:
        """What the planner sees: the record so far and the vetted training data per method."""
        data = self.data
        return PlannerState(
            config=self.config,
            baseline=self.baseline,
            history=tuple(self.history),
            failures=tuple(self.failures),
            datasets=data.datasets if data else (),
            default_datasets=data.default_datasets if data else (),
            datasets_by_method=data.by_method if data else {},
            sources=data.sources if data else (),
        )

    def next_context(self) -> IterationContext:
        return self.context_for(self.done + 1)

    def context_for(self, index: int, campaign_id: str | None = None) -> IterationContext:
        """What iteration `index` gets from the campaign (a round's iterations share the best so far)."""
        best = self.best()
        return IterationContext(
            index=index,
            workspace=self.workspace,
            base_model=self.base_model,
            base_fingerprint=self.base_fingerprint,
            benchmark=self.config.benchmark,
            eval_limit=self.config.eval_limit,
            seed=self.config.seed,
            baseline=self.baseline,
            best=best.evaluation if best else None,
            best_model=best.train.model_path if best else None,
            best_run=best.train.trackio_run if best else None,
            backend=self.config.training_backend,
            eval_backend=self.config.eval_backend,
            eval_server=self.eval_server,
            evaluator=self.evaluator,
            data_sources=self.data.sources if self.data else (),
            data_row_budget=self.config.data_row_budget,
            eval_split=self.config.select_on,
            campaign_id=campaign_id,
            hub_repo_id=self.config.hub_repo_id if self.config.push_to_hub else None,
        )

    def at(self, index: int) -> IterationResult | FailedIteration:
        """The iteration recorded with this index, finished or failed."""
        recorded: list[IterationResult | FailedIteration] = [*self.history, *self.failures]
        found = [r for r in recorded if r.index == index]
        if not found:
            raise LookupError(f"the campaign has recorded no iteration {index}")
        return found[0]

    def latest(self) -> IterationResult | FailedIteration:
        """The iteration recorded last, finished or failed."""
        recorded: list[IterationResult | FailedIteration] = [*self.history, *self.failures]
        if not recorded:
            raise LookupError("the campaign has recorded no iteration yet")
        return max(recorded, key=lambda r: r.index)

    def record(
        self,
        proposal: Proposal,
        outcome: State | IterationResult,
        index: int | None = None,
        finished_s: float | None = None,
    ) -> None:
        """A finished iteration joins the history; a failed or crashed one is kept with its error,
        never dropped.  `outcome` is the iteration flow run's final state, or its result read back
        (a run on a work pool); `index` defaults to the next one, `finished_s` to now."""
        index = self.done + 1 if index is None else index
        finished_s = self.elapsed_s if finished_s is None else finished_s
        if isinstance(outcome, IterationResult) or outcome.is_completed():
            result = outcome if isinstance(outcome, IterationResult) else outcome.result()
            self.history.append(result.model_copy(update={"finished_s": finished_s}))
            self.history.sort(key=lambda r: r.index)
            return
        try:
            error: BaseException | object = outcome.result(raise_on_failure=False)
        except Exception as unreadable:  # a crashed run on another machine may have persisted nothing
            error = unreadable
        if isinstance(error, BaseException):
            message = f"{type(error).__name__}: {error}"
        else:  # e.g. "CRASHED: the worker's process was killed"
            message = f"{outcome.type.value}: {outcome.message or 'no message'}"
        self.failures.append(
            FailedIteration(
                index=index,
                params=proposal.params,
                rationale=proposal.rationale,
                error=message,
                flow_run_id=str(outcome.state_details.flow_run_id),
                findings=findings_from_failure(error if isinstance(error, BaseException) else message),
                finished_s=finished_s,
            )
        )
        self.failures.sort(key=lambda f: f.index)

    def report(self, stop_reason: str, flow_run_id: str | None = None) -> CampaignReport:
        best = self.best()
        return CampaignReport(
            config=self.config,
            base_model=self.base_model,
            baseline=self.baseline,
            iterations=tuple(self.history),
            failures=tuple(self.failures),
            best_iteration=best.index if best else None,
            best_score=best.evaluation.accuracy if best else self.baseline.accuracy,
            best_model_path=best.train.model_path if best else self.base_model,
            stop_reason=stop_reason,
            elapsed_s=self.elapsed_s,
            flow_run_id=flow_run_id,
            resumed_from=self.resumed_from,
            selected_on=self.config.select_on,
            dev_source=self.dev_source,
            test_baseline=self.test_baseline,
            test_best=self.test_best,
        )
