"""Publish gate: the last check of an iteration's transaction, after its model was published.

Two things must still hold for a published model to stand: its evaluation is against the
campaign's pinned evaluator and test set (`EvaluatorChangedError` otherwise: a failed evaluation),
and no row it actually trained on (self-distilled rows included) repeats a prompt of the eval
splits (`ContaminationBlocked`).  The dataset stage already keeps such rows out; this re-checks
the file the model was trained from, so a model is never published on a contaminated score.
Either error rolls the transaction back: the best pointer and the pushed Hub branch are undone.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from internflow.benchmarks import get_benchmark
from internflow.data.formats import to_example
from internflow.data.vetting import dev_index, eval_index
from internflow.evaluation.integrity import check_evaluator
from internflow.schemas import PreparedDataset

__all__ = ["ContaminationBlocked", "publish_gate"]


class ContaminationBlocked(RuntimeError):
    """Rows the model trained on repeat eval prompts: its score is not evidence, it is not published."""


@task(name="publish-gate", cache_policy=NO_CACHE)
def publish_gate(data: PreparedDataset, benchmark_name: str, evaluator: str) -> int:
    """Check the evaluator pin and every training row's prompt against the test (and dev) prompts;
    returns the rows checked, raises when the model must not stand as published."""
    benchmark = get_benchmark(benchmark_name)
    check_evaluator(benchmark, evaluator)
    test, dev = eval_index(benchmark), dev_index(benchmark)
    contaminated: list[int] = []
    lines = Path(data.path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        prompt = to_example(json.loads(line), f"{data.path}:{number}").prompt_text
        if test.is_contaminated(prompt) or (dev is not None and dev.is_contaminated(prompt)):
            contaminated.append(number)
    if contaminated:
        shown = ", ".join(map(str, contaminated[:10])) + (", ..." if len(contaminated) > 10 else "")
        raise ContaminationBlocked(
            f"{data.path}: {len(contaminated)} of {len(lines)} training rows repeat {benchmark.name} eval prompts "
            f"(lines {shown}): the model's score is not evidence, so it is not published"
        )
    get_run_logger().info("publish gate passed: evaluator unchanged, %d training rows clean", len(lines))
    return len(lines)
