"""Typed values that cross stage boundaries: what each task takes and returns.

One pydantic model per concept.  `IterationParams` is at once the iteration flow's parameter
schema (so the Prefect UI renders a form), the planner's output schema and part of the cache key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# How answers are generated for evaluation: a vLLM server, or transformers in-process (a fallback
# that must be chosen by name, never fallen back to silently).
EvalBackend = Literal["vllm", "transformers"]

# A Hub dataset named as training data: hub:owner/name[:config][@split].
HUB_ID = re.compile(r"^hub:(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<config>[\w.-]+))?(?:@(?P<split>[\w.-]+))?$")

# What a dataset's rows can be read as (internflow.data.formats): a conversation, a prompt with
# the answer to imitate, a preference pair, or a prompt alone (with a reference answer for rewards).
RowFormat = Literal["messages", "prompt_completion", "preference", "prompt_only"]

__all__ = [
    "CampaignConfig",
    "CampaignFailure",
    "CampaignReport",
    "ColumnMapping",
    "DataPlan",
    "DataSource",
    "DatasetCheck",
    "DatasetSource",
    "DiscoveryReport",
    "Diagnosis",
    "Direction",
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
    "Planned",
    "Paper",
    "PreparedDataset",
    "RowFormat",
    "Proposal",
    "TrainFailure",
    "TrainRequest",
    "TrainResult",
    "UsedWhen",
]


class _Frozen(BaseModel):
    # NaN losses are evidence for the diagnose stage: keep them through JSON round trips.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


# ---------------------------------------------------------------- parameters ---------------


@dataclass(frozen=True)
class Planned:
    """`Annotated` marker on an `IterationParams` field: a planner may set it (agent/search_space.py
    reads the planned fields from these), a number within `bounds` (inclusive) where a planner on a
    small budget needs a narrower range than the schema's limits.  Unmarked fields are no planner's."""

    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class UsedWhen:
    """`Annotated` marker on an `IterationParams` field that changes what is trained only for some
    `methods` and/or only when the field named `by` is set (truthy), e.g. LoRA's rank without LoRA;
    elsewhere a proposal's `signature` leaves it out."""

    methods: tuple[str, ...] = ()
    by: str = ""

    def applies(self, params: IterationParams) -> bool:
        return (not self.methods or params.method in self.methods) and (not self.by or bool(getattr(params, self.by)))


class IterationParams(_Frozen):
    """Everything the planner may choose for one research iteration, and nothing else.

    The base model, the benchmark and its evaluator are deliberately absent: they are fixed per
    campaign, so no proposal can swap them.
    """

    method: Annotated[Literal["sft", "dpo", "grpo"], Planned()] = Field(
        "sft", description="Training method: SFT, DPO (preference pairs) or GRPO (rewards), all through TRL."
    )
    init_from: Annotated[Literal["base", "best"], Planned()] = Field(
        "base", description="Train the campaign's base model, or continue training the best iteration's model."
    )
    datasets: Annotated[tuple[str, ...], Planned()] = Field(
        ("arithmetic-direct",), min_length=1, description="Catalog datasets to train on, mixed."
    )
    max_train_samples: Annotated[int, Planned((16, 50_000))] = Field(
        480, ge=8, le=1_000_000, description="Rows kept after mixing."
    )
    learning_rate: Annotated[float, Planned((1e-6, 1e-3))] = Field(
        1e-4, ge=1e-7, le=1e-2, description="Peak learning rate."
    )
    max_steps: Annotated[int, Planned((5, 2000))] = Field(60, ge=1, le=1_000_000, description="Optimizer steps.")
    per_device_train_batch_size: Annotated[int, Planned((1, 64))] = Field(8, ge=1, le=4096)
    gradient_accumulation_steps: Annotated[int, Planned((1, 16))] = Field(1, ge=1, le=1024)
    warmup_steps: Annotated[int, Planned((0, 200))] = Field(6, ge=0)
    lr_scheduler_type: Annotated[Literal["cosine", "linear", "constant_with_warmup"], Planned()] = "cosine"
    use_lora: Annotated[bool, Planned()] = Field(
        False, description="Train a LoRA adapter (merged afterwards) instead of all weights."
    )
    lora_r: Annotated[int, Planned((4, 128)), UsedWhen(by="use_lora")] = Field(16, ge=1, le=1024)
    lora_alpha: Annotated[int, Planned((4, 256)), UsedWhen(by="use_lora")] = Field(32, ge=1, le=4096)
    max_length: Annotated[int, Planned((64, 1024))] = Field(
        256, ge=16, le=131_072, description="Token cap per training example."
    )
    beta: Annotated[float, Planned((0.0, 1.0)), UsedWhen(methods=("dpo", "grpo"))] = Field(
        0.1, ge=0.0, le=10.0, description="DPO/GRPO: strength of the pull towards the reference model."
    )
    reward_funcs: Annotated[tuple[str, ...], Planned(), UsedWhen(methods=("grpo",))] = Field(
        ("exact_answer", "format"),
        min_length=1,
        description="GRPO: registered reward functions (internflow.training.rewards) or 'module:function' paths.",
    )
    num_generations: Annotated[int, Planned((2, 16)), UsedWhen(methods=("grpo",))] = Field(
        4, ge=2, le=256, description="GRPO: completions sampled per prompt."
    )
    max_completion_length: Annotated[int, Planned((8, 1024)), UsedWhen(methods=("grpo",))] = Field(
        64, ge=1, le=131_072, description="GRPO: token cap per sampled completion."
    )
    # The OOM floor is the training process's business, not an idea: no planner sets it.
    min_per_device_train_batch_size: int = Field(
        1, ge=1, description="Out-of-memory back-off floor: the per-device batch is never halved below this."
    )
    seed: int = 0  # not planned, and not part of the signature: a new seed alone is not a new idea
    eval_fraction: Annotated[float, Planned((0.25, 1.0))] = Field(
        1.0,
        ge=0.1,
        le=1.0,
        description="Share of the campaign's eval subset this iteration is scored on: below 1 screens an idea "
        "cheaply on a seeded prefix of it, compared with the baseline on the same items; only iterations "
        "scored on the whole subset can become the best.",
    )
    dataset_weights: Annotated[tuple[float, ...], Planned()] = Field(
        (), description="Mixing weight per dataset, in the order of `datasets` (empty: equal shares)."
    )
    train_fraction: Annotated[float, Planned((0.1, 1.0))] = Field(
        1.0,
        ge=0.1,
        le=1.0,
        description="Share of max_steps (and warmup_steps) this iteration trains: below 1 screens an idea "
        "cheaply (with eval_fraction below 1 too); the run that promotes the screen trains in full.",
    )
    completion_only_loss: Annotated[bool, Planned(), UsedWhen(methods=("sft",))] = Field(
        True, description="SFT: loss on the answer tokens only (TRL's completion_only_loss); off: on the prompt too."
    )
    # Self-distillation by rejection sampling (STaR arXiv 2203.14465, RFT 2308.01825, ReST-EM 2312.06585).
    self_distill_k: Annotated[int, Planned((0, 16))] = Field(
        0,
        ge=0,
        le=64,
        description="SFT: answers sampled per training prompt from the starting model before training; those "
        "the task's own judge accepts become training rows, worked steps and all (0: off).",
    )
    self_distill_temperature: Annotated[float, Planned((0.1, 1.5)), UsedWhen(by="self_distill_k")] = Field(
        0.8, gt=0.0, le=2.0, description="Self-distillation: sampling temperature."
    )
    self_distill_prompts: Annotated[int, Planned((8, 4096)), UsedWhen(by="self_distill_k")] = Field(
        256, ge=1, le=100_000, description="Self-distillation: training prompts sampled at most."
    )
    self_distill_keep_original: Annotated[bool, Planned(), UsedWhen(by="self_distill_k")] = Field(
        True, description="Self-distillation: train on the original rows too, beside the accepted answers."
    )

    @model_validator(mode="after")
    def _one_weight_per_dataset(self) -> IterationParams:
        if self.dataset_weights and len(self.dataset_weights) != len(self.datasets):
            raise ValueError(f"dataset_weights: {len(self.dataset_weights)} weights for {len(self.datasets)} datasets")
        if any(weight <= 0 for weight in self.dataset_weights):
            raise ValueError(f"dataset_weights: each weight must be > 0, got {list(self.dataset_weights)}")
        return self

    @model_validator(mode="after")
    def _self_distill_trains_sft(self) -> IterationParams:
        if self.self_distill_k and self.method != "sft":
            raise ValueError(f"self_distill_k: self-distillation trains SFT on the accepted answers, not {self.method}")
        return self

    def scored_in_full(self) -> IterationParams:
        """The same iteration scored on the whole eval subset (what training and the best compare on)."""
        return self.model_copy(update={"eval_fraction": 1.0})

    def in_full(self) -> IterationParams:
        """The full-fidelity run of a screen: trained for all of max_steps and scored on the whole subset."""
        return self.model_copy(update={"eval_fraction": 1.0, "train_fraction": 1.0})

    @property
    def screened(self) -> bool:
        """A cheap screen: trained on part of max_steps or scored on part of the eval subset."""
        return self.train_fraction < 1.0 or self.eval_fraction < 1.0

    def trained_steps(self) -> tuple[int, int]:
        """(optimizer steps, warmup steps) this iteration trains: max_steps and warmup_steps × train_fraction."""
        steps = max(1, math.ceil(self.max_steps * self.train_fraction))
        return steps, math.ceil(self.warmup_steps * self.train_fraction)

    def signature(self) -> str:
        """Canonical, readable identity of a proposal: two parameter sets with one signature train the
        same model, so the guard and the search policy call them the same proposal.

        Left out: the seed (a new seed alone is not a new idea) and every setting that does not apply
        (`UsedWhen`: LoRA's rank without LoRA, GRPO's sampling for SFT, self-distillation's settings
        with it off).  Normalised: datasets sorted, their mixing weights as multiples of the smallest
        (equal weights are no weights), the learning rate to two significant digits, other floats
        to six.  A screen (trained or scored on a fraction) differs from the full run that promotes it.
        e.g. ``sft|init=base|arithmetic-direct|n=480|lr=1.0e-04|steps=60|bs=8x1|warmup=6|cosine|full|len=256``
        """
        used = {
            name: getattr(self, name)
            for name, field in type(self).model_fields.items()
            if name != "seed" and all(m.applies(self) for m in field.metadata if isinstance(m, UsedWhen))
        }
        weights = self.dataset_weights if len(set(self.dataset_weights)) > 1 else ()
        mix = dict(zip(self.datasets, (w / min(weights) for w in weights), strict=False))
        data = "+".join(f"{name}:{mix[name]:g}" if mix else name for name in sorted(self.datasets))
        head = (
            self.method,
            f"init={self.init_from}",
            data,
            f"n={self.max_train_samples}",
            f"lr={self.learning_rate:.1e}",
            f"steps={self.max_steps}",
            f"bs={self.per_device_train_batch_size}x{self.gradient_accumulation_steps}",
            f"warmup={self.warmup_steps}",
            self.lr_scheduler_type,
            f"lora{self.lora_r}/{self.lora_alpha}" if self.use_lora else "full",
            f"len={self.max_length}",
        ) + ((f"eval={self.eval_fraction:g}",) if self.eval_fraction < 1 else ())
        # Every other field that applies, as name=value where it differs from its default: a new
        # IterationParams field is part of the signature without an edit here.
        others = tuple(
            f"{name}={_short(value)}"
            for name, value in used.items()
            if name not in _SIGNATURE_HEAD and value != type(self).model_fields[name].default
        )
        return "|".join(head + others)

    @field_validator("datasets")
    @classmethod
    def _no_duplicate_datasets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"datasets: each dataset may appear once, got {list(value)}")
        return value


# The fields `IterationParams.signature` writes first, in a short form of their own.
_SIGNATURE_HEAD = frozenset(
    {"method", "init_from", "datasets", "dataset_weights", "max_train_samples", "learning_rate", "max_steps",
     "per_device_train_batch_size", "gradient_accumulation_steps", "warmup_steps", "lr_scheduler_type",
     "use_lora", "lora_r", "lora_alpha", "max_length", "eval_fraction"}
)  # fmt: skip


def _short(value: object) -> str:
    if isinstance(value, tuple | list):
        return "+".join(map(_short, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


class CampaignConfig(_Frozen):
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


# ---------------------------------------------------------------- literature ---------------


class LiteratureRequest(_Frozen):
    query: str = Field(min_length=1)
    max_results: int = Field(5, ge=1, le=100)
    cache_dir: Path
    hf_papers: bool = Field(True, description="Also search Hugging Face Papers.")
    citation_depth: int = Field(1, ge=0, le=3, description="Hops through Semantic Scholar's citation graph.")
    max_citations: int = Field(10, ge=0, le=200, description="Papers the citation walk may add at most.")
    read_top: int = Field(2, ge=0, le=20, description="Top-ranked papers whose HTML method sections are read.")


class Paper(_Frozen):
    arxiv_id: str
    title: str
    summary: str
    url: str
    published: str = ""
    found_by: tuple[str, ...] = Field((), description="Where it was found: arxiv, hf-papers, citations of X.")
    score: float = Field(0.0, description="Relevance to the campaign goal (higher is closer).")
    why: str = Field("", description="Why it ranked where it did.")


class Hint(_Frozen):
    """Something actionable a paper says, with the passage it came from."""

    kind: Literal["method", "hyperparameter", "dataset"]
    name: str
    value: str = ""
    paper: str = Field(description="arXiv id of the paper the passage is from.")
    section: str = ""
    passage: str


class LiteratureReport(_Frozen):
    query: str
    status: Literal["online", "cached", "offline"]
    papers: tuple[Paper, ...] = ()
    note: str = ""
    hints: tuple[Hint, ...] = ()
    sources: dict[str, str] = Field(default_factory=dict, description="What each service returned, or why not.")


# ---------------------------------------------------------------- data ---------------------


class ColumnMapping(_Frozen):
    """Which column of a dataset plays which role.  Inferred from the columns and first rows
    (`internflow.data.formats.infer_mapping`) or given by the user for any other layout."""

    prompt: str | None = Field(None, description="The user turn: prompt, question, problem, instruction, query...")
    input: str | None = Field(None, description="Extra context appended to the prompt (Alpaca's 'input').")
    completion: str | None = Field(None, description="The answer to imitate: completion, response, output, solution...")
    chosen: str | None = Field(None, description="Preference pairs: the preferred answer (or whole conversation).")
    rejected: str | None = Field(None, description="Preference pairs: the dispreferred answer.")
    answer: str | None = Field(
        None,
        description="The reference answer a judge or GRPO reward compares with (default: the completion's "
        "final answer).",
    )
    messages: str | None = Field(
        None, description="A whole conversation: OpenAI-style role/content or ShareGPT from/value turns."
    )

    @model_validator(mode="after")
    def _something_to_read(self) -> ColumnMapping:
        if not (self.messages or self.prompt or (self.chosen and self.rejected)):
            raise ValueError("a column mapping needs 'messages', 'prompt', or 'chosen' and 'rejected'")
        return self

    def format(self) -> RowFormat:
        if self.messages:
            return "messages"
        if self.chosen and self.rejected:
            return "preference"
        return "prompt_completion" if self.completion else "prompt_only"

    def describe(self) -> str:
        """'prompt←question, completion←answer' — what the artifact and the planner show."""
        roles = self.model_dump(exclude_none=True)
        return ", ".join(f"{role}←{column}" for role, column in roles.items())


class DataSource(_Frozen):
    """A training dataset a campaign may use, pinned: where its rows come from, how its columns map,
    and why discovery ranked it where it did.  `id` is what `IterationParams.datasets` names."""

    id: str = Field(description="Catalog name, 'hub:owner/name:config@split' or 'task:<name>:train'.")
    kind: Literal["local", "hub", "task"]
    repo: str | None = Field(None, description="Hub dataset repository.")
    config: str | None = None
    split: str = "train"
    revision: str | None = Field(None, description="Hub commit sha the rows are read at (pinned at discovery).")
    path: str | None = Field(None, description="Local JSONL file (catalog and task-spec data).")
    columns: tuple[str, ...] = Field((), description="The dataset's columns, as inspected.")
    mapping: ColumnMapping | None = Field(None, description="How the columns map to roles (inferred or given).")
    format: RowFormat | None = None
    methods: tuple[str, ...] = Field((), description="Training methods its layout can feed.")
    rows: int | None = Field(None, description="Rows in the split, as the Hub or the file says.")
    license: str | None = None
    downloads: int | None = None
    description: str = ""
    score: float = Field(0.0, description="Discovery's rank score (higher first).")
    why: str = Field("", description="The evidence behind the score.")
    found_by: tuple[str, ...] = Field((), description="Queries or sources that found it.")
    status: Literal["candidate", "gated", "invalid", "unmappable", "not_pinned", "error"] = "candidate"
    note: str = ""

    @property
    def usable(self) -> bool:
        return self.status == "candidate"


class DiscoveryReport(_Frozen):
    """What dataset discovery searched and found for a campaign's target, best first."""

    target: str
    status: Literal["online", "cached", "offline", "partial"]
    queries: tuple[str, ...] = ()
    sources: tuple[DataSource, ...] = ()
    notes: tuple[str, ...] = Field((), description="What each service answered, what was skipped and why.")

    def usable(self) -> tuple[DataSource, ...]:
        return tuple(s for s in self.sources if s.usable)


class DataPlan(_Frozen):
    """The training data a campaign may use: discovery's report, and per training method the
    vetted source ids (best first) that the planner may choose from."""

    discovery: DiscoveryReport
    sources: tuple[DataSource, ...] = Field((), description="Every usable source, best first.")
    by_method: dict[str, tuple[str, ...]] = Field(default_factory=dict, description="method → vetted source ids.")
    default_datasets: tuple[str, ...] = Field((), description="What the starting recipe trains on.")
    checks: dict[str, dict[str, DatasetCheck]] = Field(
        default_factory=dict, description="source id → method → the gate's and quality checks' verdict."
    )

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sources)


class DatasetSource(_Frozen):
    name: str
    path: str
    rows_used: int
    sha256: str


class DatasetCheck(_Frozen):
    """What the quality checks and the decontamination gate did to one dataset."""

    name: str
    format: str
    mapping: str = Field("", description="How its columns were read, e.g. 'prompt←question, completion←answer'.")
    rows_in: int
    rows_kept: int
    rejected: dict[str, int] = Field(default_factory=dict)
    contaminated_rows: int = 0
    contamination_ratio: float = 0.0
    blocked: bool = Field(False, description="The whole dataset was kept out of training.")
    note: str = ""


class PreparedDataset(_Frozen):
    """Training rows in the TRL conversational format the method needs, written as JSONL."""

    path: str
    format: Literal["conversational_prompt_completion", "conversational_preference", "conversational_prompt_only"] = (
        "conversational_prompt_completion"
    )
    rows: int
    sources: tuple[DatasetSource, ...]
    rejected: dict[str, int] = Field(default_factory=dict, description="Dropped rows by reason.")
    fingerprint: str
    checks: tuple[DatasetCheck, ...] = ()
    quarantine_path: str | None = Field(None, description="JSONL of every rejected row with its reason.")


# ---------------------------------------------------------------- training -----------------


class TrainRequest(_Frozen):
    init_model: str = Field(description="The model training starts from: the base model or the best so far.")
    init_fingerprint: str
    data: PreparedDataset
    params: IterationParams
    checkpoint_dir: str
    model_dir: str
    trackio_dir: str
    trackio_project: str
    run_name: str
    benchmark: str = Field("arithmetic", description="Benchmark whose answer extractor the GRPO rewards use.")
    backend: str = Field("local", description="Where training runs: 'local' (child process) or 'hf-jobs'.")


class TrainFailure(_Frozen):
    """Why a training run failed, written by the training process for the diagnose stage."""

    kind: Literal["out_of_memory", "disk_full", "error"]
    message: str
    attempts: tuple[str, ...] = Field((), description="Batch settings tried, in order (OOM back-off).")


class LossPoint(_Frozen):
    step: int
    loss: float


class TrainResult(_Frozen):
    model_path: str
    adapter_path: str | None = Field(
        None, description="LoRA runs: the adapter before merging, which a running vLLM server hot-loads."
    )
    adapter_base: str | None = Field(None, description="The model the adapter was trained on.")

    def adapter(self) -> tuple[str, str] | None:
        """(adapter folder, the model it was trained on) for a LoRA run, else None."""
        return (self.adapter_path, self.adapter_base) if self.adapter_path and self.adapter_base else None

    steps: int
    losses: tuple[LossPoint, ...]
    final_loss: float | None
    rewards: tuple[LossPoint, ...] = Field((), description="GRPO: mean reward per logged step.")
    per_device_train_batch_size: int | None = Field(None, description="Batch actually used (after OOM back-off).")
    gradient_accumulation_steps: int | None = None
    resumed_from_step: int | None = Field(None, description="Checkpoint step a re-run continued from (after a crash).")
    runtime_s: float
    trackio_project: str
    trackio_run: str
    checkpoint_dir: str


# ---------------------------------------------------------------- evaluation ---------------


class ServedModel(_Frozen):
    """An OpenAI-compatible server (vLLM) and the model name to request from it."""

    base_url: str = Field(description="OpenAI-compatible root, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="The name to request: the served model's or a loaded adapter's.")
    model_path: str = Field(description="What the server started with: LoRA adapters trained on it can be hot-loaded.")
    hot_load_adapters: bool = Field(
        True,
        description="Evaluate LoRA runs by hot-loading their adapters (fast on GPU); otherwise every model is "
        "evaluated by reloading its weights into the server in place (vLLM's CPU LoRA kernels are slow).",
    )
    dtype: str | None = Field(None, description="Its --dtype: a model that needs a server of its own gets the same.")
    reload_updates_tied_head: bool = Field(
        True,
        description="An in-place reload also updates an output layer tied to the embeddings.  vLLM's CPU build "
        "keeps the old one (its repacked copy of the head is not rebuilt), so there a model whose tied embeddings "
        "changed is evaluated on a server of its own.",
    )
    reload_weights: bool = Field(
        True, description="Other models' weights may be reloaded into it in place (our own servers, not a user's)."
    )


class EvalRequest(_Frozen):
    """One evaluation: a model scored on a seeded subset of one split of a benchmark."""

    # The server is where answers come from, not what they are: it stays out of the cache key.
    NOT_IN_CACHE_KEY: ClassVar[frozenset[str]] = frozenset({"server"})

    model_path: str = Field(description="The model folder (or Hub id) to score.")
    model_fingerprint: str = Field(description="Names its work folder and samples file, e.g. the run name.")
    benchmark: str = Field(description="Benchmark name, or a task spec's path: what get_benchmark reads.")
    limit: int | None = Field(description="Items scored: the first `limit` of a seeded shuffle; None for all.")
    seed: int
    label: str = Field(description="The result's label: baseline, iteration-3, best-test, ...")
    samples_dir: Path = Field(
        description="Where `<label>-<model_fingerprint>.jsonl` goes; its parent is the workspace."
    )
    backend: EvalBackend = "vllm"
    server: ServedModel | None = Field(None, description="The campaign's server (a live handle, not data).")
    adapter: tuple[str, str] | None = Field(
        None, description="LoRA runs: (adapter folder, the model it was trained on), hot-loaded into the server."
    )
    evaluator: str = Field("", description="The campaign's evaluator fingerprint; a changed benchmark is refused.")
    split: Literal["train", "dev", "test"] = "test"

    def cache_inputs(self) -> dict[str, Any]:
        """What the evaluate task's cache key hashes: every field but those in NOT_IN_CACHE_KEY."""
        return self.model_dump(mode="json", exclude=set(self.NOT_IN_CACHE_KEY))


class EvalResult(_Frozen):
    label: str
    benchmark: str
    accuracy: float
    n: int
    n_correct: int
    ci_low: float
    ci_high: float
    unparseable: int = Field(description="Outputs from which no answer could be extracted.")
    over_length: int = Field(0, description="Prompts longer than the model's context: not answered, scored wrong.")
    samples_path: str
    runtime_s: float
    backend: str = Field("", description="What generated the answers: vllm or transformers.")
    split: Literal["train", "dev", "test"] = Field(
        "test", description="Which split it was scored on: dev while a campaign chooses, test once at its end."
    )


# ---------------------------------------------------------------- diagnosis ----------------


FindingKind = Literal[
    "nan_loss",
    "divergence",
    "no_learning",
    "format_failure",
    "improved",
    "no_change",
    "regressed",
    "loss_spike",
    "overfitting",
    "reward_collapse",
    "kl_blowup",
    "length_collapse",
    "regressed_vs_best",
    "out_of_memory",
    "disk_full",
    "train_failed",
    "stage_failed",
]

# What the planner can do about a finding: one step in parameter space, or a change of course.
Direction = Literal[
    "lower_lr",
    "raise_lr",
    "more_steps",
    "fewer_steps",
    "change_data",
    "fix_format",
    "raise_beta",
    "use_lora",
    "switch_method",
    "return_to_best",
    "change_direction",
    "keep_direction",
]


class Finding(_Frozen):
    kind: FindingKind
    severity: Literal["info", "warning", "error"]
    message: str
    suggestion: str = ""
    direction: Direction | None = Field(None, description="The planner's next move, as a structured hint.")
    evidence: dict[str, float] = Field(default_factory=dict, description="The numbers the finding rests on.")
    steps: tuple[int, ...] = Field((), description="Training steps where it shows.")
    detector: str = Field("", description="Registered detector (internflow.diagnostics) that produced it.")


class Diagnosis(_Frozen):
    verdict: Literal["improved", "no_change", "regressed", "failed"]
    gain_vs_baseline: float
    gain_vs_best: float | None
    findings: tuple[Finding, ...]


# ---------------------------------------------------------------- iteration / campaign -----


class IterationContext(_Frozen):
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


class Proposal(_Frozen):
    params: IterationParams
    rationale: str
    evidence: tuple[str, ...] = ()
    source: str = Field("", description="Which planner (or fallback) produced it.")
    guard_action: Literal["accept", "reject", "force"] = Field(
        "accept", description="What the doom-loop guard did: accepted, rejected once then accepted, or forced."
    )
    guard_reasons: str = Field("", description="The guard's detections, when it intervened.")


class NoProposal(_Frozen):
    """The planning step's answer when nothing is proposed: why, which becomes the campaign's stop reason."""

    reason: str
    source: str = Field("", description="Which planner (or the guard) had nothing left.")


class IterationResult(_Frozen):
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


class FailedIteration(_Frozen):
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


class CampaignReport(_Frozen):
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


class CampaignFailure(_Frozen):
    """report.json of a campaign that failed after preflight but before its baseline was scored."""

    config: CampaignConfig
    failure: str = Field(description="The error that ended the campaign: its type and message.")
    stop_reason: str
    elapsed_s: float
    flow_run_id: str | None = None
