"""A campaign: what the user hands internflow (`CampaignConfig`, the campaign flow's parameter
schema) and its record (`CampaignReport`, or `CampaignFailure` when it ended before its baseline)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from internflow.schemas.base import Frozen
from internflow.schemas.data import HUB_ID, ColumnMapping
from internflow.schemas.evaluation import EvalBackend, EvalResult
from internflow.schemas.iteration import FailedIteration, IterationResult

__all__ = ["CampaignConfig", "CampaignFailure", "CampaignReport"]


class CampaignConfig(Frozen):
    """What the user hands internflow: a base model, a benchmark and a budget."""

    model: str = Field(
        "smollm2-135m",
        description="Base model: 'smollm2-135m' (embedded), a local HF folder, or a Hub id.",
    )
    benchmark: str = Field(
        "arithmetic",
        description="Benchmark to improve on: bundled (arithmetic, family-mc), a Hub target (gsm8k, gpqa-main, "
        "aime-2025, humaneval, mmlu) or a task spec file (.yaml/.json).",
    )
    workspace: str = Field("internflow-workspace", description="Folder holding everything this campaign writes.")
    time_budget_minutes: float = Field(12.0, gt=0, description="Wall-clock budget for the campaign.")
    max_iterations: int = Field(3, ge=1, le=1000, description="Research iterations at most.")
    eval_limit: int | None = Field(
        200, ge=1, description="Eval subset size during the campaign (None: whole test split)."
    )
    # Descriptions are markdown in the Prefect UI's form: placeholders sit in code spans, where
    # `<base_url>` is shown as written instead of being dropped as an HTML tag.
    planner: str = Field(
        "search",
        description="Who proposes each iteration: `search` (deterministic) | `bundled` or `bundled:<folder>` "
        "(a local model ranks the search policy's moves) | `openai:<base_url>:<model>` | "
        "`hf:<model>[@provider]` | `litellm:<model>` | `transformers:<folder>`.",
    )
    mcp_config: str | None = Field(None, description="YAML file of MCP servers whose tools the LLM planner may use.")
    digest_tokens: int = Field(1000, ge=50, description="Token budget of the campaign digest the planner reads.")
    recipe: str = Field(
        "sft/default", description="Recipe the planner starts from, `<method>/<variant>` (e.g. `sft/default`)."
    )
    seed: int = Field(0, description="Which seeded subset of the test split every evaluation scores.")
    push_to_hub: bool = Field(False, description="Upload the best model folder (with its model card) to the Hub.")
    hub_repo_id: str | None = Field(None, description="Hub repository for push_to_hub, e.g. 'user/model' (private).")
    approval_gpu_hours: float | None = Field(
        None, ge=0, description="Pause for approval before an iteration estimated above this many GPU-hours."
    )
    approval_usd: float | None = Field(None, ge=0, description="Pause for approval above this estimated cost.")
    gpu_usd_per_hour: float = Field(
        0.0, ge=0, description="Price of the training hardware per hour, for approval_usd and money_budget_usd."
    )
    money_budget_usd: float | None = Field(
        None, gt=0, description="Stop before an iteration whose estimated cost exceeds what is left of this."
    )
    training_backend: Literal["local", "hf-jobs"] = Field(
        "local",
        description="Where training runs: a local child process, or Hugging Face Jobs (`INTERNFLOW_HF_JOBS_*`).",
    )
    eval_backend: EvalBackend = Field(
        "vllm", description="Answers for evaluation from a vLLM server (default), or 'transformers' in-process."
    )
    eval_endpoint: str | None = Field(
        None,
        description="OpenAI-compatible URL (…/v1) of a vLLM server you run for the base model, with runtime "
        "LoRA loading on; none: internflow starts and stops its own.",
    )
    select_on: Literal["dev", "test"] = Field(
        "dev",
        description="The split iterations are chosen on: `dev` (the test split is then scored once, at the end, "
        "for the baseline and the best-on-dev model) or `test`, only for a target with no dev data; every report "
        "then marks the result optimistic.",
    )
    datasets: tuple[str, ...] = Field(
        (),
        description="Training datasets you name, vetted with the ones discovery finds: local catalog names or "
        "`hub:owner/name[:config][@split]`.",
    )
    column_mappings: dict[str, ColumnMapping] = Field(
        default_factory=dict,
        description="Column mapping per dataset id, for layouts discovery cannot read, e.g. "
        '`{"hub:org/x": {"prompt": "instruction", "completion": "output"}}`.',
    )

    @field_validator("datasets")
    @classmethod
    def _hub_ids_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if name.startswith("hub:") and not HUB_ID.match(name)]
        if bad:
            raise ValueError(f"expected hub:owner/name[:config][@split] or a catalog name, got {bad}")
        return value

    hub_datasets: int = Field(4, ge=0, le=50, description="Hub datasets discovery pins and vets at most (best first).")
    data_row_budget: int = Field(20_000, ge=100, description="Rows read from each Hub dataset at most.")
    keep_last_models: int = Field(
        2,
        ge=0,
        description="Model folders kept besides the best iteration's: those of the last N iterations (older ones, "
        "and every finished run's optimizer checkpoints, are deleted to bound the disk).",
    )
    approval_timeout_s: int = Field(3600, ge=1, description="How long a paused run waits for an answer.")
    approval_default: Literal["approve", "reject"] = Field(
        "reject", description="What an unanswered approval becomes after the timeout."
    )
    parallel_iterations: int = Field(
        1,
        ge=1,
        le=64,
        description="Iterations each planning round proposes and runs at the same time (one per GPU; the `gpu` "
        "concurrency limit still caps the training jobs).",
    )
    work_pool: str | None = Field(
        None,
        description="Prefect work pool whose `research-iteration` deployment runs the iterations (a worker per "
        "GPU); none: they run as sub-flows of the campaign's process.",
    )

    @model_validator(mode="after")
    def _push_needs_a_repo(self) -> CampaignConfig:
        if self.push_to_hub and not self.hub_repo_id:
            raise ValueError("hub_repo_id: push_to_hub is on, so name the Hub repository (e.g. 'user/model')")
        return self


class CampaignReport(Frozen):
    """A campaign's record: the baseline and iterations on the split they were chosen on (dev), and
    the baseline and best model scored once on the test split at the end."""

    config: CampaignConfig
    base_model: str
    baseline: EvalResult
    iterations: tuple[IterationResult, ...]
    failures: tuple[FailedIteration, ...] = ()
    best_iteration: int | None
    best_score: float
    best_model_path: str
    stop_reason: str
    elapsed_s: float
    flow_run_id: str | None = None
    selected_on: Literal["dev", "test"] = Field("dev", description="The split iterations were chosen on.")
    dev_source: str = Field("", description="Where that split came from, in words.")
    test_baseline: EvalResult | None = Field(
        None, description="The base model on the test split, scored once after the search."
    )
    test_best: EvalResult | None = Field(
        None, description="The best-on-dev model on the test split, scored once after the search (None: no best)."
    )
    failure: str | None = Field(None, description="The error that ended the campaign early, when one did.")
    resumed_from: tuple[str, ...] = Field(
        (), description="Flow runs of this campaign killed before they finished, whose record it continued."
    )

    @property
    def optimistic(self) -> bool:
        """Chosen on the test split itself: the reported test score is biased upwards."""
        return self.selected_on == "test"


class CampaignFailure(Frozen):
    """report.json of a campaign that failed after preflight but before its baseline was scored."""

    config: CampaignConfig
    failure: str = Field(description="The error that ended the campaign: its type and message.")
    stop_reason: str
    elapsed_s: float
    flow_run_id: str | None = None
