"""Evaluation stage: an EvalRequest — a seeded subset of one of the benchmark's splits (dev while a
campaign chooses, test once at its end) — scored by the library (`internflow.evaluation.run`:
answered greedily by a vLLM server, or transformers in-process when asked for by name, each answer
extracted and judged); accuracy with n and a 95 % Wilson interval, per-sample rows saved to the
workspace and shown worst first as the `evaluation` artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import TASK_SOURCE, CachePolicy
from prefect.utilities.hashing import hash_objects

from internflow.evaluation.run import run_evaluation
from internflow.evaluation.samples_markdown import evaluation_markdown
from internflow.models import model_content_fingerprint
from internflow.schemas import EvalRequest, EvalResult

__all__ = ["evaluate_model"]


def _request_key(task_ctx: Any, inputs: dict[str, Any]) -> str | None:
    """The request without what EvalRequest keeps out of the cache key (the server), and the model's
    content: a model retrained into the same folder is evaluated again."""
    request: EvalRequest = inputs["request"]
    return hash_objects(request.cache_inputs(), model_content_fingerprint(request.model_path), raise_on_failure=True)


@task(
    name="evaluate",
    cache_policy=TASK_SOURCE + CachePolicy.from_cache_key_fn(_request_key),
    persist_result=True,
    retries=1,
    retry_delay_seconds=5,
)
def evaluate_model(request: EvalRequest) -> EvalResult:
    """Score a model on a seeded subset of the benchmark's split through lighteval; returns the
    EvalResult (accuracy, n, 95 % Wilson interval, counts, samples file) and publishes the
    `evaluation` artifact.  Raises ValueError when the benchmark's code or test set no longer match
    the request's evaluator fingerprint."""
    result, samples = run_evaluation(request)
    create_markdown_artifact(
        key="evaluation",
        markdown=evaluation_markdown(result, samples),
        description=f"{result.label}: accuracy {result.accuracy:.1%} (n={result.n}); failures, worst first",
    )
    return result
