"""Self-distillation stage (between dataset and train, when `self_distill_k` > 0): the iteration's
starting model answers each training prompt k times on the campaign's vLLM server (put on it in
place, as an evaluation does) or with transformers in-process; the answers the task's own judge
accepts become SFT rows (`internflow.data.distill`, STaR / RFT / ReST-EM).

Artifact `self-distillation`: prompts sampled, answers accepted per prompt, the acceptance rate,
why the others were rejected, and examples.  Cached on the request (starting model fingerprint,
prepared data, sampling settings), so a re-run of the iteration trains on the same rows; the
distilled data's fingerprint is in the train stage's cache key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import INPUTS, TASK_SOURCE

from internflow.benchmarks import get_benchmark
from internflow.data.distill import (
    DistillRequest,
    DistillResult,
    Sampler,
    ServerSampler,
    TransformersSampler,
    distill,
)
from internflow.markdown import cell, table
from internflow.schemas import EvalBackend, IterationParams, PreparedDataset, ServedModel

__all__ = ["distill_markdown", "distill_request", "self_distill"]


def distill_request(
    params: IterationParams, data: PreparedDataset, start: tuple[str, str], benchmark: str, out_dir: Path
) -> DistillRequest:
    """The iteration's distillation: `start` is the (model path, fingerprint) its training starts
    from, whose answers are sampled; answers get the evaluation's token budget."""
    model_path, fingerprint = start
    return DistillRequest(
        data=data,
        model_path=model_path,
        model_fingerprint=fingerprint,
        benchmark=benchmark,
        k=params.self_distill_k,
        temperature=params.self_distill_temperature,
        max_prompts=params.self_distill_prompts,
        max_new_tokens=get_benchmark(benchmark).max_new_tokens,
        keep_original=params.self_distill_keep_original,
        seed=params.seed,
        out_dir=str(out_dir),
    )


@contextmanager
def _sampler(
    request: DistillRequest, backend: EvalBackend, server: ServedModel | None, log_dir: Path
) -> Iterator[Sampler]:
    """transformers in-process, or the campaign's server made to answer as the starting model (a
    server of its own when the campaign's cannot be: a user's endpoint serving another model)."""
    from internflow.evaluation.run import campaign_server_for
    from internflow.evaluation.server import VLLMServer
    from internflow.models import load_chat_tokenizer

    if backend == "transformers":
        yield TransformersSampler(request.model_path)
        return
    tokenizer = load_chat_tokenizer(request.model_path)
    served = campaign_server_for(server, request.model_path, request.model_fingerprint, None)
    if served is not None:
        yield ServerSampler(served, tokenizer)
        return
    with VLLMServer(request.model_path, log_dir) as own:
        yield ServerSampler(own.served(), tokenizer)


# The server is where answers come from, not what they are: it stays out of the cache key.
@task(
    name="self-distill",
    cache_policy=(INPUTS - "server" - "log_dir") + TASK_SOURCE,
    persist_result=True,
    retries=1,
    retry_delay_seconds=5,
)
def self_distill(
    request: DistillRequest,
    backend: EvalBackend = "vllm",
    server: ServedModel | None = None,
    log_dir: Path = Path("logs"),
) -> PreparedDataset:
    """Self-distillation: sample `self_distill_k` answers per training prompt from the starting model,
    keep those the task's judge accepts as SFT rows; returns the new training data (JSONL) and
    publishes the `self-distillation` artifact. Cached on its inputs (not the server or log folder)."""
    with _sampler(request, backend, server, log_dir) as sampler:
        result = distill(request, sampler)
    get_run_logger().info(
        "self-distillation: %d of %d answers accepted (%.0f%%) for %d prompts; %d rows kept, %d training rows",
        result.accepted, result.samples, 100 * result.acceptance_rate, result.prompts, result.kept, result.data.rows,
    )  # fmt: skip
    create_markdown_artifact(
        key="self-distillation",
        markdown=distill_markdown(request, result),
        description=f"Self-distillation: {result.acceptance_rate:.0%} of {result.samples} sampled answers accepted",
    )
    return result.data


def distill_markdown(request: DistillRequest, result: DistillResult) -> str:
    """The numbers first, then how many prompts got 0..k accepted answers, then examples."""
    rejected = ", ".join(f"{reason}: {n}" for reason, n in sorted(result.verdicts.items()) if reason != "accepted")
    per_prompt = table(
        ["accepted answers", "prompts"], [[str(n), str(count)] for n, count in result.accepted_per_prompt.items()]
    )
    examples = table(
        ["verdict", "prompt", "sampled answer", "extracted", "reference"],
        [[e.verdict, cell(e.prompt, 120), cell(e.answer, 160), cell(e.extracted or "–"), cell(e.reference)]
         for e in result.examples],
    )  # fmt: skip
    return (
        f"## Self-distillation: {result.acceptance_rate:.1%} accepted\n\n"
        f"{result.prompts} prompts × {request.k} answers sampled from {cell(request.model_path)} at temperature "
        f"{request.temperature:g} (cap {request.max_new_tokens} tokens): {result.accepted} of {result.samples} "
        f"accepted by the task's judge; {result.kept} kept as training rows after dropping duplicates"
        + (" and copies of the original answer" if request.keep_original else "")
        + f". Rejected: {rejected or 'none'}. Rows without a readable reference (not sampled): "
        f"{result.no_reference}.\n\nTraining data: {result.data.rows} rows"
        + (" (accepted answers + the original rows)" if request.keep_original else " (accepted answers only)")
        + f" → `{result.data.path}`\n\n### Accepted answers per prompt\n\n{per_prompt}\n\n"
        f"### Examples\n\n{examples}\n"
    )
