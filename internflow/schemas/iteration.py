"""One research iteration: what it needs from its campaign, the planner's proposal (or why there is
none), and its record, finished or failed."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from internflow.schemas.base import Frozen
from internflow.schemas.data import DataSource, PreparedDataset
from internflow.schemas.diagnosis import Diagnosis, Finding
from internflow.schemas.evaluation import EvalBackend, EvalResult, ServedModel
from internflow.schemas.literature import LiteratureReport
from internflow.schemas.params import IterationParams
from internflow.schemas.training import TrainResult

__all__ = ["FailedIteration", "IterationContext", "IterationResult", "NoProposal", "Proposal"]


class IterationContext(Frozen):
    """What an iteration needs from its campaign besides its own parameters."""

    index: int = Field(ge=1)
    workspace: str
    base_model: str
    base_fingerprint: str
    benchmark: str
    eval_limit: int | None
    seed: int = 0
    baseline: EvalResult
    best: EvalResult | None = None
    best_model: str | None = Field(None, description="Folder of the best iteration's model, for init_from='best'.")
    best_run: str | None = Field(None, description="Content-addressed run name of that model.")
    backend: str = Field("local", description="Training backend (internflow.execution) for this iteration.")
    eval_backend: EvalBackend = Field("vllm", description="Generation for evaluation (CampaignConfig.eval_backend).")
    eval_server: ServedModel | None = Field(
        None, description="The campaign's vLLM server; each iteration's model is put on it in place."
    )
    evaluator: str = Field("", description="Fingerprint of the campaign's evaluator and test set (checked each eval).")
    data_sources: tuple[DataSource, ...] = Field(
        (), description="The campaign's vetted training datasets (pinned); `params.datasets` names some of them."
    )
    data_row_budget: int = Field(20_000, ge=1, description="Rows read from each Hub dataset at most.")
    eval_split: Literal["dev", "test"] = Field("dev", description="The split iterations are scored on (select_on).")
    campaign_id: str | None = Field(None, description="The campaign's flow run id: the resource of its events.")
    hub_repo_id: str | None = Field(
        None, description="Hub repository a new best model is pushed to (a branch per run) when push_to_hub is on."
    )

    def eval_items(self, fraction: float) -> int | None:
        """How many items of the campaign's eval subset (the baseline's) an iteration is scored on."""
        if fraction >= 1.0:
            return self.eval_limit
        return max(1, math.ceil(self.baseline.n * fraction))


class Proposal(Frozen):
    params: IterationParams
    rationale: str
    evidence: tuple[str, ...] = ()
    source: str = Field("", description="Which planner (or fallback) produced it.")
    guard_action: Literal["accept", "reject", "force"] = Field(
        "accept", description="What the doom-loop guard did: accepted, rejected once then accepted, or forced."
    )
    guard_reasons: str = Field("", description="The guard's detections, when it intervened.")


class NoProposal(Frozen):
    """The planning step's answer when nothing is proposed: why, which becomes the campaign's stop reason."""

    reason: str
    source: str = Field("", description="Which planner (or the guard) had nothing left.")


class IterationResult(Frozen):
    index: int
    params: IterationParams
    rationale: str = ""
    flow_run_id: str | None = None
    literature: LiteratureReport
    data: PreparedDataset
    train: TrainResult
    evaluation: EvalResult
    diagnosis: Diagnosis
    wall_s: float
    finished_s: float | None = Field(
        None, description="Seconds from the campaign's baseline to this iteration's end (set by the campaign)."
    )
    blocked: str | None = Field(
        None, description="Why the publish gate kept this model back (it is never the best), when it did."
    )


class FailedIteration(Frozen):
    """An iteration that raised: kept in the record so the planner never re-proposes it blindly."""

    index: int
    params: IterationParams
    rationale: str = ""
    error: str
    flow_run_id: str | None = None
    findings: tuple[Finding, ...] = Field((), description="Typed reasons (out_of_memory, train_failed, ...).")
    finished_s: float | None = Field(
        None, description="Seconds from the campaign's baseline to this iteration's end (set by the campaign)."
    )
