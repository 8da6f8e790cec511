"""Evaluation stage: a seeded subset of one of the benchmark's splits (dev while a campaign chooses,
test once at its end) as a lighteval task, answered greedily by
a vLLM server (or transformers in-process, when asked for by name), each answer extracted and
judged; accuracy with n and a 95 % Wilson interval, per-sample rows saved to the workspace and
shown worst first as an artifact.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lighteval.models.abstract_model import LightevalModel
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy

from internflow.benchmarks import Benchmark, BenchmarkItem, Split, get_benchmark
from internflow.diagnostics import load_samples
from internflow.evaluation.integrity import check_evaluator
from internflow.evaluation.lighteval_models import InProcessTransformersModel, ServedOpenAIModel
from internflow.evaluation.lighteval_tasks import dump_samples, run_lighteval
from internflow.evaluation.server import (
    EvalServerError,
    ServerSettings,
    VLLMServer,
    exclusive_use,
    load_adapter,
    load_weights,
    served_model_name,
)
from internflow.markdown import cell, code, table
from internflow.models import load_chat_tokenizer, model_content_fingerprint
from internflow.schemas import EvalBackend, EvalResult, ServedModel

logger = logging.getLogger(__name__)

__all__ = [
    "campaign_server_for",
    "eval_server",
    "evaluate_model",
    "evaluation_markdown",
    "on_first_items",
    "select_items",
    "wilson_interval",
]


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval: honest at small n and near 0 or 1, unlike the normal approximation."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def select_items(benchmark: Benchmark, limit: int | None, seed: int, split: Split = "test") -> list[BenchmarkItem]:
    """The first `limit` items of a seeded shuffle of `split` (all of them for None): the same
    items for every iteration, and a smaller limit gives a prefix of a larger one, so a screened
    iteration's items are among the baseline's."""
    items = benchmark.load(split)
    random.Random(seed).shuffle(items)
    return items if limit is None else items[:limit]


def on_first_items(result: EvalResult, n: int) -> EvalResult:
    """`result` re-scored on its first `n` items (those a screened iteration was scored on), from its
    per-sample file, so that two scores compared are scores on the same items."""
    if n >= result.n:
        return result
    samples_file = Path(result.samples_path)
    if not samples_file.is_file():
        raise FileNotFoundError(
            f"samples_path: {samples_file} is missing, so {result.label} cannot be re-scored on its first {n} items"
        )
    return result.model_copy(update={"label": f"{result.label}[:{n}]", **_scores(load_samples(samples_file)[:n])})


def _scores(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy with n, its 95 % Wilson interval, the unparseable and over-length counts, from
    per-sample rows.  An over-length item counts in n, as wrong, and not as unparseable."""
    n_correct = sum(1 for s in samples if s["correct"])
    low, high = wilson_interval(n_correct, len(samples))
    return {
        "accuracy": n_correct / len(samples),
        "n": len(samples),
        "n_correct": n_correct,
        "ci_low": low,
        "ci_high": high,
        "unparseable": sum(s["extracted"] is None and not s.get("over_length") for s in samples),
        "over_length": sum(bool(s.get("over_length")) for s in samples),
    }


@contextmanager
def eval_server(
    backend: EvalBackend, base_model: str, endpoint: str | None, log_dir: Path
) -> Iterator[ServedModel | None]:
    """The campaign's server for its base model, kept up across iterations so that each one's model
    is put on it in place (campaign_server_for) instead of on a new server: the user's endpoint
    when given, otherwise one started here and stopped when the campaign ends, fails or is
    cancelled.  None for transformers."""
    if backend == "transformers":
        yield None
    elif endpoint:
        # A user's server is only read from: adapters are loaded into it, its weights never replaced.
        yield ServedModel(
            base_url=endpoint.rstrip("/"),
            model=served_model_name(endpoint),
            model_path=base_model,
            reload_weights=False,
        )
    else:
        with VLLMServer(base_model, log_dir) as server:
            yield server.served()


@contextmanager
def _answering_model(
    model_path: str,
    run_name: str,
    backend: EvalBackend,
    server: ServedModel | None,
    adapter: tuple[str, str] | None,
    work_dir: Path,
    log_dir: Path,
) -> Iterator[LightevalModel]:
    """What generates the answers: the campaign's server (the base model, or an adapter hot-loaded
    into it), a server started for this model alone (a full fine-tune), or transformers in-process."""
    cache_dir = str(work_dir / "lighteval-cache")
    if backend == "transformers":
        yield InProcessTransformersModel(model_path, cache_dir)
        return
    tokenizer = load_chat_tokenizer(model_path)  # a model without a chat template is refused, named
    with exclusive_use(server, log_dir):  # iterations evaluated at the same time take turns on it
        served = campaign_server_for(server, model_path, run_name, adapter)
        if served is not None:
            yield ServedOpenAIModel(served, tokenizer, cache_dir)
            return
    # Scored in the campaign server's dtype: a campaign compares its models in one numeric precision.
    settings = ServerSettings(dtype=server.dtype) if server is not None and server.dtype else None
    with VLLMServer(model_path, log_dir, settings) as own:
        yield ServedOpenAIModel(own.served(), tokenizer, cache_dir)


def campaign_server_for(
    server: ServedModel | None, model_path: str, run_name: str, adapter: tuple[str, str] | None
) -> ServedModel | None:
    """The campaign's server, made to answer as `model_path`: its LoRA adapter hot-loaded, or its
    weights reloaded in place (the base model's too: the weights are whatever the last evaluation
    left, and a reload takes well under a second).  None when neither is possible here."""
    if server is None:
        return None
    if server.hot_load_adapters and adapter is not None and adapter[1] == server.model_path:
        try:
            return load_adapter(server, run_name, adapter[0])
        except EvalServerError as error:  # e.g. a rank above the server's --max-lora-rank
            logger.warning("%s; reloading the merged weights instead", error)
    if server.reload_weights:
        try:
            return load_weights(server, model_path)
        except EvalServerError as error:  # e.g. another architecture
            logger.warning("%s; evaluating %s on a server of its own instead", error, model_path)
    elif model_path == server.model_path:
        return server
    return None


def _model_content(task_ctx: Any, inputs: dict[str, Any]) -> str:
    return model_content_fingerprint(inputs["model_path"])


# The server is where answers come from, not what they are: it stays out of the cache key.  The
# model's content is in it: a model retrained into the same folder is evaluated again.
@task(
    name="evaluate",
    cache_policy=(INPUTS - "server") + TASK_SOURCE + CachePolicy.from_cache_key_fn(_model_content),
    persist_result=True,
    retries=1,
    retry_delay_seconds=5,
)
def evaluate_model(
    model_path: str,
    model_fingerprint: str,
    benchmark_name: str,
    limit: int | None,
    seed: int,
    label: str,
    samples_dir: Path,
    backend: EvalBackend = "vllm",
    server: ServedModel | None = None,
    adapter: tuple[str, str] | None = None,
    evaluator: str = "",
    split: Split = "test",
) -> EvalResult:
    """Score a model on a seeded subset of the benchmark's `split` through lighteval.  `adapter` is
    (adapter folder, model it was trained on) for LoRA runs; `evaluator` the campaign's evaluator
    fingerprint, refused when the benchmark's code or test set no longer match it."""
    started = time.monotonic()
    benchmark = get_benchmark(benchmark_name)
    check_evaluator(benchmark, evaluator)
    items = select_items(benchmark, limit, seed, split)
    workspace_root = samples_dir.parent
    work_dir = workspace_root / "eval-work" / f"{label}-{model_fingerprint}"
    log_dir = workspace_root / "logs"
    with _answering_model(model_path, model_fingerprint, backend, server, adapter, work_dir, log_dir) as model:
        samples = run_lighteval(benchmark, items, model, work_dir)
    samples_path = samples_dir / f"{label}-{model_fingerprint}.jsonl"
    dump_samples(samples, samples_path)

    result = EvalResult(
        label=label,
        benchmark=benchmark_name,
        samples_path=str(samples_path),
        runtime_s=time.monotonic() - started,
        backend=backend,
        split=split,
        **_scores(samples),
    )
    _publish(result, samples)
    return result


def _shared_ends(prompts: Sequence[str]) -> tuple[str, str]:
    """The instruction every prompt starts and ends with (whole words), so a table can show only
    the part that differs, whole.  Empty when there is a single prompt or little is shared."""
    if len(prompts) < 2:
        return "", ""
    head_match = re.match(r"(?s).*\s", os.path.commonprefix(list(prompts)))
    head = head_match.group(0) if head_match else ""
    reversed_tail = os.path.commonprefix([p[len(head) :][::-1] for p in prompts])
    tail_match = re.search(r"(?s)\s.*", reversed_tail[::-1])
    tail = tail_match.group(0) if tail_match else ""
    return (head, tail) if len(head) + len(tail) >= 12 else ("", "")


def evaluation_markdown(result: EvalResult, samples: Sequence[Mapping[str, Any]], shown: int = 20) -> str:
    """Score with n and CI, then the failures only, worst first (no answer found, then wrong answers),
    each with its whole question; the instruction every prompt shares is stated once above them.
    Short questions and outputs make a table; longer ones a labelled block per failure, since the
    Prefect UI does not wrap table cells and a long cell pushes the other columns out of sight."""
    every_failure = sorted((s for s in samples if not s["correct"]), key=lambda s: s["extracted"] is not None)
    failures = every_failure[:shown]
    head, tail = _shared_ends([s["prompt"] for s in samples])
    summary = (
        f"## {cell(result.label)}: {result.accuracy:.1%} on {cell(result.benchmark)}\n\n"
        f"n = {result.n}, {result.n_correct} correct, 95 % CI [{result.ci_low:.1%}, {result.ci_high:.1%}], "
        f"no answer found in {result.unparseable}; over the model's context (not answered): {result.over_length}; "
        f"answers from {result.backend or 'unknown'}; every sample: {code(result.samples_path)}\n\n"
    )
    if not failures:
        return summary + f"All {result.n} answers are correct."
    shared = f"Every prompt reads {code(head + '…' + tail)}; shown is the question in between.\n\n"
    questions = [" ".join(s["prompt"][len(head) : len(s["prompt"]) - len(tail)].split()) for s in failures]
    outputs = [" ".join(str(s["output"] or "").split()) for s in failures]
    found = [cell(s["extracted"], 60) if s["extracted"] is not None else "*none found*" for s in failures]
    if max(map(len, questions + outputs)) <= 80:
        body = table(
            ["item", "question", "model output", "extracted answer", "expected answer"],
            [[cell(s["id"]), cell(q), cell(o), f, cell(s["expected"], 60)]
             for s, q, o, f in zip(failures, questions, outputs, found, strict=True)],
        )  # fmt: skip
    else:
        body = "\n\n".join(
            f"**{cell(s['id'])}** — expected answer: {cell(s['expected'], 60)}; extracted answer: {f}\n\n"
            f"> **Question:** {cell(q, 4000)}\n>\n> **Model output:** {cell(o, 600)}"
            for s, q, o, f in zip(failures, questions, outputs, found, strict=True)
        )
    return (
        summary
        + f"### Failures, worst first ({len(failures)} of {len(every_failure)} shown)\n\n"
        + "Answers with no extractable answer come first, then wrong answers.\n\n"
        + (shared if head or tail else "")
        + body
    )


def _publish(result: EvalResult, samples: list[dict]) -> None:
    create_markdown_artifact(
        key="evaluation",
        markdown=evaluation_markdown(result, samples),
        description=f"{result.label}: accuracy {result.accuracy:.1%} (n={result.n}); failures, worst first",
    )
