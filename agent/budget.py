"""Campaign budgets: wall clock, iteration count and money.  Every stop has a stated reason.

Before a training job starts it gets an estimate: hours (scaled from the closest past iteration
by the optimizer work asked for) × the hardware's hourly price = dollars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from internflow.schemas import IterationParams, IterationResult

if TYPE_CHECKING:
    from huggingface_hub import HfApi

__all__ = [
    "METHOD_STEP_COST",
    "JobEstimate",
    "estimate_iteration_seconds",
    "estimate_job",
    "hf_jobs_hourly_usd",
    "round_estimate_s",
    "stop_reason",
]

# Cost of one optimizer step on one example relative to SFT, for switching methods before a
# measurement exists.  DPO: chosen and rejected through the policy (forward + backward) and the
# reference (forward).  GRPO: one sequential forward pass per generated token on top of the
# update; the per-token cost is a rough prior (~1/8 of an SFT step), replaced by a measurement
# as soon as one GRPO iteration has run.
METHOD_STEP_COST = {
    "sft": lambda p: 1.0,
    "dpo": lambda p: 2.5,
    "grpo": lambda p: 1.0 + p.max_completion_length / 8,
}


# One answer sampled for self-distillation, relative to an SFT step on one example: a short
# generation on the eval server (a rough prior, so that a distilling iteration is estimated longer
# than the same run without it).
DISTILL_SAMPLE_COST = 0.1


def _work(params: IterationParams) -> float:
    steps, _ = params.trained_steps()
    examples = steps * params.per_device_train_batch_size * params.gradient_accumulation_steps
    samples = min(params.self_distill_prompts, params.max_train_samples) * params.self_distill_k
    return examples * METHOD_STEP_COST[params.method](params) + samples * DISTILL_SAMPLE_COST


def estimate_iteration_seconds(next_params: IterationParams, history: list[IterationResult]) -> float | None:
    """Seconds the next iteration should take, from a past one's wall time in three parts: its
    training time scaled by the optimizer work asked for, its evaluation time scaled by the share of
    the eval subset, and the rest (planning, diagnosis, serving set-up) as it was.  The past
    iteration is the latest with the same method when there is one (a measured rate), else the
    latest of any method.  None before any iteration has finished.

    The parts matter for short runs: a run cut to a quarter of its steps still loads, evaluates and
    diagnoses its model, and scaling the whole wall time by the steps let one overrun the budget."""
    if not history:
        return None
    same_method = [r for r in history if r.params.method == next_params.method]
    reference = (same_method or history)[-1]
    train_s = min(reference.train.runtime_s, reference.wall_s)
    eval_s = min(reference.evaluation.runtime_s, reference.wall_s - train_s)
    fixed_s = reference.wall_s - train_s - eval_s
    eval_share = next_params.eval_fraction / reference.params.eval_fraction
    return fixed_s + eval_s * eval_share + train_s * _work(next_params) / _work(reference.params)


@dataclass(frozen=True)
class JobEstimate:
    """What a training job is expected to take and cost before it starts."""

    hardware: str
    hours: float
    usd_per_hour: float

    @property
    def usd(self) -> float:
        return self.hours * self.usd_per_hour

    def describe(self) -> str:
        return f"~{self.hours * 60:.0f} min on {self.hardware} ≈ ${self.usd:.2f} (at ${self.usd_per_hour:.2f}/h)"


def estimate_job(seconds: float, hardware: str = "local", usd_per_hour: float = 0.0) -> JobEstimate:
    """Hardware × expected hours.  Local hardware is already paid for: price 0 unless given."""
    if seconds < 0 or usd_per_hour < 0:
        raise ValueError(f"estimate_job: seconds and usd_per_hour must be >= 0, got {seconds}, {usd_per_hour}")
    return JobEstimate(hardware=hardware, hours=seconds / 3600, usd_per_hour=usd_per_hour)


def hf_jobs_hourly_usd(flavor: str, api: HfApi | None = None) -> float:
    """The Hub's own price for a Jobs hardware flavor (`list_jobs_hardware`), per hour."""
    from huggingface_hub import HfApi

    hardware = (api or HfApi()).list_jobs_hardware()
    per_unit_hours = {"second": 1 / 3600, "minute": 1 / 60, "hour": 1.0}
    for item in hardware:
        if item.name == flavor:
            return item.unit_cost_usd / per_unit_hours[item.unit_label]
    raise ValueError(f"flavor: unknown HF Jobs hardware {flavor!r}; known: {', '.join(h.name for h in hardware)}")


def stop_reason(
    *,
    elapsed_s: float,
    time_budget_s: float,
    iterations_done: int,
    max_iterations: int,
    next_estimate_s: float | None = None,
    next_job: JobEstimate | None = None,
    money_left_usd: float | None = None,
    round_size: int = 1,
) -> str | None:
    """Why the campaign must stop now, or None.  With an estimate, also stop when the next
    iteration would not finish inside the budget, or (with a money budget) cost more than is left.
    A round of `round_size` iterations run at the same time counts as the sum of its iterations
    (`next_estimate_s` and `next_job` are that sum): GPU time and money are spent per iteration."""
    if iterations_done >= max_iterations:
        return f"iteration budget spent ({iterations_done} of {max_iterations})"
    remaining = time_budget_s - elapsed_s
    if remaining <= 0:
        return f"time budget spent ({elapsed_s / 60:.1f} of {time_budget_s / 60:.1f} min)"
    what = "the next iteration" if round_size == 1 else f"the next round of {round_size} iterations"
    summed = "" if round_size == 1 else " (the sum of its iterations)"
    if next_estimate_s is not None and next_estimate_s > remaining:
        return (
            f"time budget: {what} needs ~{next_estimate_s / 60:.1f} min{summed}, "
            f"{remaining / 60:.1f} min left of {time_budget_s / 60:.1f}"
        )
    if next_job is not None and money_left_usd is not None and next_job.usd > money_left_usd:
        job = "the next job" if round_size == 1 else f"{what}"
        return f"money budget: {job} needs {next_job.describe()}{summed}, ${money_left_usd:.2f} left"
    return None


def round_estimate_s(proposals: list[IterationParams], history: list[IterationResult]) -> float | None:
    """A round's estimate: the sum of its iterations' (None until an iteration has been measured)."""
    estimates = [estimate_iteration_seconds(params, history) for params in proposals]
    known = [e for e in estimates if e is not None]
    return sum(known) if known else None
