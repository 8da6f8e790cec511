"""Running one evaluation (EvalRequest → EvalResult and its per-sample rows): the benchmark's
seeded items as a lighteval task, answered greedily by the campaign's vLLM server (its model put
on it in place), a server of the model's own, or transformers in-process; each answer extracted
and judged, every sample saved."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lighteval.models.abstract_model import LightevalModel

from internflow.benchmarks import get_benchmark
from internflow.evaluation.integrity import check_evaluator
from internflow.evaluation.lighteval_models import InProcessTransformersModel, ServedOpenAIModel
from internflow.evaluation.lighteval_tasks import dump_samples, run_lighteval
from internflow.evaluation.scoring import scores, select_items
from internflow.evaluation.server import (
    EvalServerError,
    ServerSettings,
    VLLMServer,
    exclusive_use,
    load_adapter,
    load_weights,
    served_model_name,
)
from internflow.models import load_chat_tokenizer
from internflow.schemas import EvalBackend, EvalRequest, EvalResult, ServedModel

logger = logging.getLogger(__name__)

__all__ = ["campaign_server_for", "eval_server", "run_evaluation"]


def run_evaluation(request: EvalRequest) -> tuple[EvalResult, list[dict[str, Any]]]:
    """Score `request.model_path` on its items; returns the result and the per-sample rows (also
    written to `<samples_dir>/<label>-<model_fingerprint>.jsonl`).  Raises ValueError when the
    benchmark's code or test set no longer match `request.evaluator`, EvalServerError when no
    server can answer."""
    started = time.monotonic()
    benchmark = get_benchmark(request.benchmark)
    check_evaluator(benchmark, request.evaluator)
    items = select_items(benchmark, request.limit, request.seed, request.split)
    name = f"{request.label}-{request.model_fingerprint}"
    workspace_root = request.samples_dir.parent
    work_dir, log_dir = workspace_root / "eval-work" / name, workspace_root / "logs"
    with _answering_model(request, work_dir, log_dir) as model:
        samples = run_lighteval(benchmark, items, model, work_dir)
    samples_path = request.samples_dir / f"{name}.jsonl"
    dump_samples(samples, samples_path)
    result = EvalResult(
        label=request.label,
        benchmark=request.benchmark,
        samples_path=str(samples_path),
        runtime_s=time.monotonic() - started,
        backend=request.backend,
        split=request.split,
        **scores(samples),
    )
    return result, samples


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
def _answering_model(request: EvalRequest, work_dir: Path, log_dir: Path) -> Iterator[LightevalModel]:
    """What generates the answers: the campaign's server (the base model, or an adapter hot-loaded
    into it), a server started for this model alone (a full fine-tune), or transformers in-process."""
    model_path, server = request.model_path, request.server
    cache_dir = str(work_dir / "lighteval-cache")
    if request.backend == "transformers":
        yield InProcessTransformersModel(model_path, cache_dir)
        return
    tokenizer = load_chat_tokenizer(model_path)  # a model without a chat template is refused, named
    with exclusive_use(server, log_dir):  # iterations evaluated at the same time take turns on it
        served = campaign_server_for(server, model_path, request.model_fingerprint, request.adapter)
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
