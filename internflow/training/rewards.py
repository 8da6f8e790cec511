"""Reward functions for GRPO: a registry of name → factory(benchmark) → TRL reward function.

A TRL reward function takes the batch's `completions` (plus every dataset column as a keyword,
e.g. `answer`) and returns one float per completion.  Built-ins judge with the benchmark's own
answer extractor and judge, so the reward and the evaluation can never disagree.  Add your own
with `@register_reward("name")`, or name any function by its import path, `package.module:func`
(what a recipe uses, since training runs in a child process).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from internflow.benchmarks import Benchmark, get_benchmark

__all__ = [
    "REWARDS",
    "RewardFunc",
    "UnknownRewardError",
    "get_reward_funcs",
    "register_reward",
    "reward_columns",
]

RewardFunc = Callable[..., list[float]]
RewardFactory = Callable[[Benchmark], RewardFunc]


class UnknownRewardError(ValueError):
    pass


def _text(completion: Any) -> str:
    """A completion is a string, or (conversational data) a list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content", "") for message in completion)


def _exact_answer(benchmark: Benchmark) -> RewardFunc:
    def exact_answer(completions: list[Any], answer: list[Any], **_: Any) -> list[float]:
        """1 when the benchmark's judge accepts the extracted answer, else 0.  The reference is read
        as the evaluation reads it (a GSM8K worked answer's '#### 72' is 72); one that cannot be
        read is an error naming it, never a silent 0 for every completion (the dataset stage
        quarantines such rows before training)."""
        scores = []
        for completion, expected in zip(completions, answer, strict=True):
            reference = benchmark.reference(expected)
            if reference is None:
                raise ValueError(
                    f"answer: reference {expected!r} cannot be read as {benchmark.name!r} answers are judged"
                )
            extracted = benchmark.extract(_text(completion))
            scores.append(1.0 if extracted is not None and benchmark.judge(extracted, reference) else 0.0)
        return scores

    return exact_answer


def _format(benchmark: Benchmark) -> RewardFunc:
    def format_reward(completions: list[Any], **_: Any) -> list[float]:
        """1 when the evaluator can read an answer at all (counters 'unparseable' outputs)."""
        return [0.0 if benchmark.extract(_text(c)) is None else 1.0 for c in completions]

    return format_reward


def _length_penalty(benchmark: Benchmark) -> RewardFunc:
    # The evaluator stops at max_new_tokens; ~4 characters a token.  Past that budget the
    # penalty grows linearly to -1 at twice the budget.
    budget = 4 * benchmark.max_new_tokens

    def length_penalty(completions: list[Any], **_: Any) -> list[float]:
        """0 within the evaluator's generation budget, down to -1 at twice it."""
        return [-min(1.0, max(0, len(_text(c)) - budget) / budget) for c in completions]

    return length_penalty


REWARDS: dict[str, RewardFactory] = {
    "exact_answer": _exact_answer,
    "format": _format,
    "length_penalty": _length_penalty,
}


def register_reward(name: str) -> Callable[[RewardFunc], RewardFunc]:
    """Decorator: make a TRL-style reward function available to recipes under `name`."""

    def register(func: RewardFunc) -> RewardFunc:
        if name in REWARDS:
            raise ValueError(f"reward_funcs: a reward named {name!r} is already registered")
        REWARDS[name] = lambda _benchmark: func
        return func

    return register


def get_reward_funcs(names: list[str] | tuple[str, ...], benchmark: str) -> list[RewardFunc]:
    """Registered names or `module:function` paths → reward functions bound to the benchmark."""
    bench = get_benchmark(benchmark)
    funcs = []
    for name in names:
        if name in REWARDS:
            funcs.append(REWARDS[name](bench))
        elif ":" in name:
            module, _, attr = name.partition(":")
            try:
                funcs.append(getattr(importlib.import_module(module), attr))
            except (ImportError, AttributeError) as error:
                raise UnknownRewardError(f"reward_funcs: cannot import {name!r}: {error}") from error
        else:
            raise UnknownRewardError(
                f"reward_funcs: unknown reward {name!r}; known: {', '.join(sorted(REWARDS))} "
                "(or give a 'package.module:function' path)"
            )
    return funcs


# What TRL itself passes every reward function; any other named parameter is a dataset column.
_TRL_ARGUMENTS = frozenset({"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric"})


def reward_columns(names: list[str] | tuple[str, ...], benchmark: str) -> tuple[str, ...]:
    """The dataset columns the reward functions need: their required parameters that TRL does not
    supply itself (e.g. `answer` for `exact_answer`).  Checked against the training data before
    any model loads, so a missing column is a named error, not a TypeError deep inside TRL."""
    needed: dict[str, None] = {}
    for func in get_reward_funcs(names, benchmark):
        for parameter in inspect.signature(func).parameters.values():
            required = parameter.default is inspect.Parameter.empty and parameter.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            )
            if required and parameter.name not in _TRL_ARGUMENTS:
                needed[parameter.name] = None
    return tuple(needed)
