"""The deterministic planner: a hill-climbing search around the best iteration so far.

It starts from the campaign's recipe, reacts to the last diagnosis (diverged → lower the
learning rate, barely learned → raise it), and otherwise tries an ordered list of single moves
on the best parameters — first continuing to train the best model, since on a small compute
budget more steps on what already works is the surest gain — never proposing a parameter set it
has already run.  It is also the
fallback whenever an LLM planner fails.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

from pydantic import ValidationError

from agent.planner import PlannerState, load_recipe
from internflow.schemas import Finding, IterationParams, Proposal

__all__ = ["SearchPolicy", "signature"]

_METHODS: tuple[str, ...] = typing.get_args(IterationParams.model_fields["method"].annotation)

Move = tuple[str, Callable[[IterationParams, PlannerState], IterationParams | None]]


def _within_bounds(params: IterationParams | None) -> IterationParams | None:
    """model_copy() skips validation: re-validate, and drop a move that leaves the search space."""
    if params is None:
        return None
    try:
        return IterationParams.model_validate(params.model_dump())
    except ValidationError:
        return None


def signature(params: IterationParams) -> str:
    """Canonical identity of a proposal (seed aside: re-running with a new seed is not new)."""
    return params.model_copy(update={"seed": 0}).model_dump_json()


def _scale_lr(factor: float) -> Callable[[IterationParams, PlannerState], IterationParams | None]:
    return lambda p, _: p.model_copy(update={"learning_rate": min(1e-2, p.learning_rate * factor)})


def _add_dataset(p: IterationParams, state: PlannerState) -> IterationParams | None:
    unused = [d for d in state.datasets_for(p.method) if d not in p.datasets]
    return p.model_copy(update={"datasets": (*p.datasets, unused[0])}) if unused else None


def _swap_dataset(p: IterationParams, state: PlannerState) -> IterationParams | None:
    unused = [d for d in state.datasets_for(p.method) if d not in p.datasets]
    return p.model_copy(update={"datasets": (unused[0],)}) if unused else None


def _more_steps(p: IterationParams, _: PlannerState) -> IterationParams:
    return p.model_copy(update={"max_steps": int(p.max_steps * 1.5)})


def _toggle_lora(p: IterationParams, _: PlannerState) -> IterationParams:
    # LoRA wants a larger learning rate than full fine-tuning for the same progress.
    factor = 5.0 if not p.use_lora else 0.2
    return p.model_copy(update={"use_lora": not p.use_lora, "learning_rate": min(1e-2, p.learning_rate * factor)})


def _continue_best(p: IterationParams, state: PlannerState) -> IterationParams | None:
    # The campaign only hands over a "best" model once an iteration has beaten the baseline.
    best = state.best_iteration()
    if best is None or best.evaluation.accuracy <= state.baseline.accuracy:
        return None
    return p.model_copy(update={"init_from": "best"})


def _switch_method(p: IterationParams, state: PlannerState) -> IterationParams | None:
    """The next training method that has data to train on, from its own recipe (a DPO or GRPO
    learning rate is not an SFT one)."""
    for method in _METHODS:
        datasets = state.datasets_for(method)
        if method != p.method and datasets:
            recipe = load_recipe(state.config.model, f"{method}/default", datasets[:1])
            return recipe.model_copy(update={"seed": p.seed})
    return None


MOVES: tuple[Move, ...] = (
    ("continue training the best model", _continue_best),
    ("double the learning rate", _scale_lr(2.0)),
    ("mix in another catalog dataset", _add_dataset),
    ("train 1.5x longer", _more_steps),
    ("halve the learning rate", _scale_lr(0.5)),
    ("switch LoRA on/off", _toggle_lora),
    ("swap the dataset", _swap_dataset),
    ("switch the training method", _switch_method),
)


def _fewer_steps(p: IterationParams, _: PlannerState) -> IterationParams:
    return p.model_copy(update={"max_steps": max(1, p.max_steps // 2)})


def _raise_beta(p: IterationParams, _: PlannerState) -> IterationParams:
    return p.model_copy(update={"beta": min(10.0, p.beta * 2)})


def _lora_on(p: IterationParams, state: PlannerState) -> IterationParams | None:
    return None if p.use_lora else _toggle_lora(p, state)


_SEVERITY = ("error", "warning", "info")  # react to the worst problem first

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


def _latest(state: PlannerState) -> tuple[int, IterationParams, tuple[Finding, ...]] | None:
    """The most recent iteration, finished or failed, with the findings its diagnosis made."""
    finished = state.history[-1] if state.history else None
    failed = state.failures[-1] if state.failures else None
    if failed is not None and (finished is None or failed.index > finished.index):
        return failed.index, failed.params, failed.findings
    if finished is not None:
        return finished.index, finished.params, finished.diagnosis.findings
    return None


class SearchPolicy:
    def propose(self, state: PlannerState) -> Proposal | None:
        tried = {signature(r.params) for r in state.history} | {signature(f.params) for f in state.failures}
        if not state.history and not state.failures:
            params = load_recipe(state.config.model, state.config.recipe, state.default_datasets)
            return Proposal(params=params, rationale=f"start from recipe {state.config.recipe!r}")

        last_run = _latest(state)
        if last_run is not None:
            index, last_params, findings = last_run
            last_params = last_params.scored_in_full()  # this policy never screens
            for finding in sorted(findings, key=lambda f: _SEVERITY.index(f.severity)):
                reaction = REACTIONS.get(finding.direction or "")
                if reaction is None:
                    continue
                name, move = reaction
                candidate = _within_bounds(move(last_params, state))
                if candidate is not None and signature(candidate) not in tried:
                    why = f"{name} after {finding.kind} in iteration {index}: {finding.message}"
                    return Proposal(params=candidate, rationale=why, evidence=(finding.message,))

        anchor = state.best_iteration()
        if anchor:
            start = anchor.params
        else:  # nothing has worked yet: move on from the most recent attempt
            start = state.history[-1].params if state.history else state.failures[-1].params
        start = start.scored_in_full()
        for name, move in MOVES:
            candidate = _within_bounds(move(start, state))
            if candidate is not None and signature(candidate) not in tried:
                where = (
                    f"best iteration {anchor.index} ({anchor.evaluation.accuracy:.1%})"
                    if anchor
                    else "the last iteration"
                )
                return Proposal(params=candidate, rationale=f"{name}, starting from {where}")
        return None
