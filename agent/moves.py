"""The search policy's moves: named single changes to an iteration's parameters, in the order the
policy tries them (expected value on a small budget first), and its reactions to a diagnosis.

A move takes the anchor's parameters and the planner's state and returns the changed parameters,
or None when it does not apply (no best model to continue yet, no other dataset, ...).  Every
planner shares them: the search policy proposes them, the bundled planner ranks them, and the LLM
planner's prompt lists them.
"""

from __future__ import annotations

from collections.abc import Callable

from internflow.agent.guard import allowed_methods
from internflow.agent.planner import PlannerState
from internflow.recipes import load_recipe
from internflow.schemas import IterationParams, IterationResult

__all__ = ["MIN_START_ACCURACY", "MOVES", "REACTIONS", "Move", "improved_best", "unseen_rows"]

Move = tuple[str, Callable[[IterationParams, PlannerState], IterationParams | None]]

# A move that starts from a model answering less than this rarely gets an answer past the judge
# (self-distillation keeps none, GRPO's rewards are all 0): it is not proposed.
MIN_START_ACCURACY = 0.1


def improved_best(state: PlannerState) -> IterationResult | None:
    """The best iteration, when it beat the baseline (the campaign only then hands over a best model)."""
    best = state.best_iteration()
    return best if best is not None and best.evaluation.accuracy > state.baseline.accuracy else None


def _start(state: PlannerState) -> tuple[str, float]:
    """Where a move that starts from the best model would start, and that model's accuracy.  A best
    model that gives one answer to (nearly) every item (`answer_collapse`) counts as answering none
    right: the answers it gets right are that one answer, and sampling it (self-distillation) or
    rewarding it (GRPO) would teach the same prior again, so neither is proposed."""
    best = improved_best(state)
    if best is None:
        return "base", state.baseline.accuracy
    collapsed = any(f.kind == "answer_collapse" for f in best.diagnosis.findings)
    return "best", 0.0 if collapsed else best.evaluation.accuracy


# ---------------------------------------------------------------- moves ----------------------


def _scale_lr(factor: float) -> Callable[[IterationParams, PlannerState], IterationParams | None]:
    return lambda p, _: p.model_copy(update={"learning_rate": min(1e-2, p.learning_rate * factor)})


def unseen_rows(p: IterationParams, state: PlannerState) -> IterationParams:
    """`p`, drawing the shard after the best model's when it continues that model on its data: the
    same shard would be a second epoch over rows the model has seen, not more data (and, with the
    same parameters, no new proposal once the best model was itself a continuation).  The rows are
    unseen when the draw is the best model's (same seed, mix and row count: `draw_shard`); a move
    that also changes the mix or the row count draws from another order, where the next shard is
    only another slice."""
    best = improved_best(state)
    if p.init_from != "best" or best is None or not set(p.datasets) & set(best.params.datasets):
        return p
    return p.model_copy(update={"data_shard": max(p.data_shard, best.params.data_shard + 1)})


def _continue_best(p: IterationParams, state: PlannerState) -> IterationParams | None:
    return p.model_copy(update={"init_from": "best"}) if improved_best(state) else None


def _continue_best_cooler(p: IterationParams, state: PlannerState) -> IterationParams | None:
    # A second stage on the best model at half the rate: what annealing does.
    if not improved_best(state):
        return None
    return p.model_copy(update={"init_from": "best", "learning_rate": p.learning_rate / 2})


def _self_distill(p: IterationParams, state: PlannerState) -> IterationParams | None:
    """Rejection-sampled answers of the best model (else the base) as extra SFT rows; the
    sampling settings come from the `sft/self-distill` recipe."""
    init_from, accuracy = _start(state)
    if p.method != "sft" or p.self_distill_k or accuracy < MIN_START_ACCURACY:
        return None
    recipe = load_recipe(state.config.model, "sft/self-distill", p.datasets)
    distill = {k: v for k, v in recipe.model_dump().items() if k.startswith("self_distill_")}
    return p.model_copy(update=distill | {"init_from": init_from})


def _grpo_with_judge(p: IterationParams, state: PlannerState) -> IterationParams | None:
    """GRPO from the best model, rewarded by the task's own judge (`exact_answer`), on the data of
    the anchor that can feed it (else the first vetted GRPO source)."""
    datasets = state.datasets_for("grpo")
    init_from, accuracy = _start(state)
    if p.method == "grpo" or not datasets or accuracy < MIN_START_ACCURACY:
        return None
    recipe = load_recipe(state.config.model, "grpo/default", datasets[:1])
    rewards = ("exact_answer", *(r for r in recipe.reward_funcs if r != "exact_answer"))
    chosen = tuple(d for d in p.datasets if d in datasets) or datasets[:1]
    update = {"datasets": chosen, "dataset_weights": (), "reward_funcs": rewards, "init_from": init_from}
    return recipe.model_copy(update=update | {"seed": p.seed})


def _more_steps(p: IterationParams, _: PlannerState) -> IterationParams:
    return p.model_copy(update={"max_steps": int(p.max_steps * 1.5)})


def _more_data(p: IterationParams, _: PlannerState) -> IterationParams:
    return p.model_copy(update={"max_train_samples": p.max_train_samples * 2})


def _add_dataset(p: IterationParams, state: PlannerState) -> IterationParams | None:
    unused = [d for d in state.datasets_for(p.method) if d not in p.datasets]
    return p.model_copy(update={"datasets": (*p.datasets, unused[0]), "dataset_weights": ()}) if unused else None


def _weight_the_mix(p: IterationParams, _: PlannerState) -> IterationParams | None:
    """Twice the share for the first dataset of a mix (the one the mix started from)."""
    if len(p.datasets) < 2 or p.dataset_weights:
        return None
    return p.model_copy(update={"dataset_weights": (2.0,) + (1.0,) * (len(p.datasets) - 1)})


def _swap_dataset(p: IterationParams, state: PlannerState) -> IterationParams | None:
    unused = [d for d in state.datasets_for(p.method) if d not in p.datasets]
    return p.model_copy(update={"datasets": (unused[0],), "dataset_weights": ()}) if unused else None


def _other_schedule(p: IterationParams, _: PlannerState) -> IterationParams:
    schedule = "constant_with_warmup" if p.lr_scheduler_type == "cosine" else "cosine"
    return p.model_copy(update={"lr_scheduler_type": schedule})


def _toggle_lora(p: IterationParams, _: PlannerState) -> IterationParams:
    # LoRA wants a larger learning rate than full fine-tuning for the same progress.
    factor = 5.0 if not p.use_lora else 0.2
    return p.model_copy(update={"use_lora": not p.use_lora, "learning_rate": min(1e-2, p.learning_rate * factor)})


def _double_rank(p: IterationParams, _: PlannerState) -> IterationParams | None:
    return p.model_copy(update={"lora_r": p.lora_r * 2, "lora_alpha": p.lora_alpha * 2}) if p.use_lora else None


def _whole_sequence_loss(p: IterationParams, _: PlannerState) -> IterationParams | None:
    return (
        p.model_copy(update={"completion_only_loss": False}) if p.method == "sft" and p.completion_only_loss else None
    )


def _switch_method(p: IterationParams, state: PlannerState) -> IterationParams | None:
    """The next training method that has data to train on, from its own recipe (a DPO or GRPO
    learning rate is not an SFT one), on that method's data."""
    for method in allowed_methods():
        datasets = state.datasets_for(method)
        # GRPO from a base model that never answers right gets no reward to learn from.
        hopeless = method == "grpo" and state.baseline.accuracy < MIN_START_ACCURACY
        if method != p.method and datasets and not hopeless:
            recipe = load_recipe(state.config.model, f"{method}/default", datasets[:1])
            return recipe.model_copy(update={"datasets": datasets[:1], "dataset_weights": (), "seed": p.seed})
    return None


MOVES: tuple[Move, ...] = (
    ("continue training the best model on rows it has not seen", _continue_best),
    ("self-distill: train on the best model's own answers that the task's judge accepts", _self_distill),
    ("continue training the best model at half the learning rate", _continue_best_cooler),
    ("double the learning rate", _scale_lr(2.0)),
    ("train 1.5x longer", _more_steps),
    ("train on twice the data", _more_data),
    ("mix in another dataset", _add_dataset),
    ("give the first dataset of the mix twice the weight", _weight_the_mix),
    ("switch the learning-rate schedule", _other_schedule),
    ("halve the learning rate", _scale_lr(0.5)),
    ("switch LoRA on/off", _toggle_lora),
    ("double the LoRA rank", _double_rank),
    ("put the loss on the prompt too", _whole_sequence_loss),
    ("GRPO from the best model, rewarded by the task's own judge", _grpo_with_judge),
    ("swap the dataset", _swap_dataset),
    ("switch the training method", _switch_method),
)


def _fewer_steps(p: IterationParams, _: PlannerState) -> IterationParams:
    return p.model_copy(update={"max_steps": max(1, p.max_steps // 2)})


def _raise_beta(p: IterationParams, _: PlannerState) -> IterationParams:
    return p.model_copy(update={"beta": min(10.0, p.beta * 2)})


def _lora_on(p: IterationParams, state: PlannerState) -> IterationParams | None:
    return None if p.use_lora else _toggle_lora(p, state)


# What the diagnose stage's suggested directions mean as moves on the last iteration's parameters.
REACTIONS: dict[str, Move] = {
    "lower_lr": ("lower the learning rate", _scale_lr(1 / 3)),
    "raise_lr": ("raise the learning rate", _scale_lr(3.0)),
    "more_steps": ("train 1.5x longer", _more_steps),
    "fewer_steps": ("train half as long", _fewer_steps),
    "raise_beta": ("pull harder towards the reference model", _raise_beta),
    "use_lora": ("train a LoRA adapter instead of all weights", _lora_on),
    "change_data": ("swap the dataset", _swap_dataset),
    "switch_method": ("switch the training method", _switch_method),
}
