"""Dataset repositories for the local Hub (tests/local_hub.py), generated offline from
reasoning-gym's `gsm_symbolic` (grade-school word problems with a worked answer ending `#### N`):

- `openai/gsm8k` — the target's own layout (config `main`: `train` and a 200-item `test` split)
- `example/gsm8k-style-train` — GSM8K layout (question, worked answer ending `#### N`)
- `example/math-word-problems` — MATH layout (problem, solution with `\\boxed{N}`, level)
- `example/gsm8k-sharegpt` — ShareGPT layout (conversations of from/value turns)
- `example/gsm8k-contaminated` — 60 % of its rows are the target's test items
- `example/gsm8k-gated` — gated: 401 without a token
- `example/gsm8k-no-layout` — columns no layout fits (`text`, `label`)
"""

from __future__ import annotations

from functools import cache
from typing import Any

from tests.local_hub import HubRepo

__all__ = ["TARGET", "gsm_items", "hub_repos"]

TARGET = "openai/gsm8k"


@cache
def gsm_items(seed: int, size: int) -> tuple[dict[str, str], ...]:
    """`size` distinct word problems: question, worked answer (ending '#### N'), final number."""
    import reasoning_gym

    items, seen = [], set()
    for entry in reasoning_gym.create_dataset("gsm_symbolic", size=size * 2, seed=seed):
        if entry["question"] in seen:
            continue
        seen.add(entry["question"])
        worked = entry["metadata"]["answer_cot"]
        items.append({"question": entry["question"], "answer": worked, "final": entry["answer"]})
        if len(items) == size:
            break
    return tuple(items)


def _gsm8k_rows(items: tuple[dict[str, str], ...]) -> list[dict[str, Any]]:
    return [{"question": i["question"], "answer": i["answer"]} for i in items]


def hub_repos(test_size: int = 200, train_size: int = 300) -> list[HubRepo]:
    test = gsm_items(1001, test_size)
    test_questions = {i["question"] for i in test}
    fresh = [i for i in gsm_items(2002, train_size * 8) if i["question"] not in test_questions]
    # The target's own training split is the largest: its dev split (200 items) is carved from it.
    own = tuple(fresh[: train_size + 200])
    style, math, chat, mixed = (tuple(fresh[(k + 1) * train_size + 200 : (k + 2) * train_size + 200]) for k in range(4))
    math_rows = [
        {
            "problem": i["question"],
            "solution": i["answer"].rsplit("####", 1)[0].strip() + f"\n\nThe answer is $\\boxed{{{i['final']}}}$.",
            "level": "Level 1",
        }
        for i in math
    ]
    chat_rows = [
        {"conversations": [{"from": "human", "value": i["question"]}, {"from": "gpt", "value": i["answer"]}]}
        for i in chat
    ]
    n_test = min(len(test), train_size * 6 // 10)
    contaminated = list(test[:n_test]) + list(mixed[: n_test * 4 // 6])  # 60 % of the rows are test items
    return [
        HubRepo(TARGET, {"main": {"train": _gsm8k_rows(own), "test": _gsm8k_rows(test)}}, downloads=400_000),
        HubRepo("example/gsm8k-style-train", {"default": {"train": _gsm8k_rows(style)}}, downloads=5_000),
        HubRepo("example/math-word-problems", {"default": {"train": math_rows}}, downloads=3_000, license="apache-2.0"),
        HubRepo("example/gsm8k-sharegpt", {"default": {"train": chat_rows}}, downloads=2_000, license="cc-by-4.0"),
        HubRepo("example/gsm8k-contaminated", {"default": {"train": _gsm8k_rows(tuple(contaminated))}}, downloads=9000),
        HubRepo("example/gsm8k-gated", {"default": {"train": _gsm8k_rows(style)}}, downloads=8_000, gated=True),
        HubRepo(
            "example/gsm8k-no-layout",
            {"default": {"train": [{"text": i["question"], "label": 1} for i in style[:50]]}},
            downloads=1_000,
        ),
    ]
