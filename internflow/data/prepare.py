"""The dataset stage's work: a DatasetRequest (dataset names, mix, method, gates) → the vetted,
mixed, TRL-formatted training file (`internflow.data.vetting.prepare_training_data`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from internflow.benchmarks import get_benchmark
from internflow.data.decontamination import DecontaminationConfig
from internflow.data.quality import QualityConfig
from internflow.data.vetting import DEFAULT_REWARDS, DataPaths, prepare_training_data, resolve_sources
from internflow.schemas import DataSource, IterationParams, PreparedDataset
from internflow.workspace import Workspace

__all__ = ["DatasetRequest", "prepare"]


class DatasetRequest(BaseModel):
    """One iteration's training data: which datasets, how many rows of each, for which method."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    datasets: tuple[str, ...] = Field(
        description="Source ids: the campaign's discovered `sources` (Hub ids read at their pinned revision), "
        "or local catalog names."
    )
    max_train_samples: int = Field(description="Rows in the mix.")
    seed: int
    shard: int = Field(0, ge=0, description="Which slice of each dataset's seeded shuffle is drawn.")
    benchmark: str = Field(description="The target: its test (and dev) prompts are the decontamination gate.")
    workspace: Workspace
    method: str = "sft"
    weights: tuple[float, ...] = Field((), description="One per dataset; empty: equal shares.")
    quality: QualityConfig | None = None
    decontamination: DecontaminationConfig | None = None
    sources: tuple[DataSource, ...] = ()
    row_budget: int = Field(20_000, description="Rows a Hub split may contribute at most.")
    reward_funcs: tuple[str, ...] = DEFAULT_REWARDS
    model: str | None = Field(None, description="The starting model: rows are measured in its tokens.")
    max_length: int | None = Field(None, description="Rows over this many tokens are quarantined as `too_long`.")

    @classmethod
    def for_iteration(
        cls,
        params: IterationParams,
        benchmark: str,
        workspace: Workspace,
        *,
        sources: tuple[DataSource, ...] = (),
        row_budget: int = 20_000,
        model: str | None = None,
    ) -> DatasetRequest:
        """An iteration's data, as its parameters choose it; `model`: the model training starts from."""
        return cls(
            datasets=params.datasets,
            max_train_samples=params.max_train_samples,
            seed=params.seed,
            shard=params.data_shard,
            benchmark=benchmark,
            workspace=workspace,
            method=params.method,
            weights=params.dataset_weights,
            sources=sources,
            row_budget=row_budget,
            reward_funcs=params.reward_funcs,
            model=model,
            max_length=params.max_length,
        )


def prepare(request: DatasetRequest) -> PreparedDataset:
    """Resolve the names, vet every source, mix and write `train-<fingerprint>.jsonl` (and the
    quarantine file) in the workspace's data folder.  ValueError when no usable row is left or a
    name is not a vetted source; CorruptDatasetError for a file that cannot be read."""
    workspace = request.workspace
    paths = DataPaths(workspace.data_dir / "hub", workspace.hf_cache_dir, request.row_budget)
    return prepare_training_data(
        resolve_sources(request.datasets, request.sources),
        get_benchmark(request.benchmark),
        paths,
        workspace.data_dir,
        method=request.method,
        max_train_samples=request.max_train_samples,
        seed=request.seed,
        shard=request.shard,
        weights=request.weights,
        quality=request.quality,
        decontamination=request.decontamination,
        reward_funcs=request.reward_funcs,
        model=request.model,
        max_length=request.max_length,
    )
