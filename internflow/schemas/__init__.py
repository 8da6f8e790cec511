"""Typed values that cross stage boundaries: what each task takes and returns.

One pydantic model per concept, one module per stage, each importing only those listed before it:
`base` (the frozen base model) < `params` (`IterationParams`) < `data` < `literature` < `training`
< `evaluation` < `diagnosis` < `iteration` < `campaign`.  `IterationParams` is at once the
iteration flow's parameter schema (so the Prefect UI renders a form), the planner's output schema
and part of the cache key.  Import from here: `from internflow.schemas import IterationParams`.
"""

from __future__ import annotations

from internflow.schemas.campaign import CampaignConfig, CampaignFailure, CampaignReport
from internflow.schemas.data import (
    HUB_ID,
    ColumnMapping,
    DataPlan,
    DatasetCheck,
    DatasetSource,
    DataSource,
    DiscoveryReport,
    PreparedDataset,
    RowFormat,
)
from internflow.schemas.diagnosis import Diagnosis, Direction, Finding, FindingKind
from internflow.schemas.evaluation import EvalBackend, EvalRequest, EvalResult, ServedModel
from internflow.schemas.iteration import FailedIteration, IterationContext, IterationResult, NoProposal, Proposal
from internflow.schemas.literature import Hint, LiteratureReport, LiteratureRequest, Paper
from internflow.schemas.params import IterationParams, Planned, UsedWhen
from internflow.schemas.training import LossPoint, TrainFailure, TrainRequest, TrainResult

__all__ = [
    "HUB_ID",
    "CampaignConfig",
    "CampaignFailure",
    "CampaignReport",
    "ColumnMapping",
    "DataPlan",
    "DataSource",
    "DatasetCheck",
    "DatasetSource",
    "Diagnosis",
    "DiscoveryReport",
    "Direction",
    "EvalBackend",
    "EvalRequest",
    "EvalResult",
    "FailedIteration",
    "Finding",
    "FindingKind",
    "Hint",
    "IterationContext",
    "IterationParams",
    "IterationResult",
    "LiteratureReport",
    "LiteratureRequest",
    "LossPoint",
    "NoProposal",
    "Paper",
    "Planned",
    "PreparedDataset",
    "Proposal",
    "RowFormat",
    "ServedModel",
    "TrainFailure",
    "TrainRequest",
    "TrainResult",
    "UsedWhen",
]
