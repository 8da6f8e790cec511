"""`IterationParams`: everything the planner may choose for one iteration — the iteration flow's
parameter schema (the Prefect UI's form), the planner's output schema and part of the cache key —
and the markers (`Planned`, `UsedWhen`) its fields carry."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from internflow.schemas.base import Frozen

__all__ = ["IterationParams", "Planned", "UsedWhen"]


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


class IterationParams(Frozen):
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
    data_shard: Annotated[int, Planned((0, 1000))] = Field(
        0,
        ge=0,
        description="Which run of rows of each dataset's seeded order is drawn: 0 the first max_train_samples "
        "share, 1 the next as many, wrapping round once every row has been drawn; with the same seed, mix and "
        "row count, a run continuing the best model on the next shard trains on rows that model has not seen.",
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
