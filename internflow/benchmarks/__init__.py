"""Bundled evaluation tasks ("benchmarks", not to be confused with Prefect tasks).

A benchmark owns its data splits, the prompt a model sees, how an answer is extracted from a
generation, and how it is judged.  The evaluator is fixed per campaign: its fingerprint covers
the test split and the scoring code, so a changed evaluator is detectable.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from internflow.benchmarks import answers
from internflow.benchmarks.answers import (
    LETTERS,
    extract_choice,
    extract_number,
    letters_equal,
    numbers_equal,
    read_letter,
    read_number,
)
from internflow.benchmarks.base import (
    DATA_DIR,
    Benchmark,
    BenchmarkItem,
    Split,
    UnknownBenchmarkError,
    carve_dev,
    read_items,
    read_text,
    render_multiple_choice,
)

__all__ = [
    "BENCHMARKS",
    "DATA_DIR",
    "LETTERS",
    "Benchmark",
    "BenchmarkItem",
    "Split",
    "carve_dev",
    "UnknownBenchmarkError",
    "answers",
    "extract_choice",
    "extract_number",
    "get_benchmark",
    "numbers_equal",
    "read_items",
    "read_text",
    "render_multiple_choice",
]


BENCHMARKS: dict[str, Benchmark] = {
    "arithmetic": Benchmark(
        name="arithmetic",
        kind="exact_answer",
        description="Two-term addition of 1-2 digit integers (reasoning-gym chain_sum); exact numeric answer.",
        max_new_tokens=32,
        default_datasets=("arithmetic-direct",),
        literature_query="supervised fine-tuning small language models arithmetic",
        extract=extract_number,
        judge=numbers_equal,
        reference=read_number,
    ),
    "family-mc": Benchmark(
        name="family-mc",
        kind="multiple_choice",
        description="Family-relationship questions (reasoning-gym) as 4-way multiple choice.",
        max_new_tokens=16,
        default_datasets=("family-mc-direct",),
        literature_query="fine-tuning small language models multiple choice reasoning",
        extract=extract_choice,
        judge=letters_equal,
        reference=lambda answer: read_letter(answer, 4),
    ),
}


def get_benchmark(name: str) -> Benchmark:
    """A bundled benchmark, a catalog target (PostTrainBench, MMLU) or a user's task spec file."""
    from internflow.benchmarks.posttrainbench import POSTTRAINBENCH
    from internflow.benchmarks.user_spec import load_task_spec

    if name in BENCHMARKS:
        return BENCHMARKS[name]
    if name in POSTTRAINBENCH:
        return POSTTRAINBENCH[name]
    if name.endswith((".yaml", ".yml", ".json")):
        return dataclasses.replace(load_task_spec(Path(name)), key=name)
    known = ", ".join(sorted(BENCHMARKS) + sorted(POSTTRAINBENCH))
    raise UnknownBenchmarkError(
        f"benchmark: unknown benchmark {name!r}; known: {known}, or a task spec file (.yaml/.json)"
    )
