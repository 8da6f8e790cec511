"""The evaluate stage's request and result, and the server answers come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from internflow.schemas.base import Frozen

__all__ = ["EvalBackend", "EvalRequest", "EvalResult", "ServedModel"]

# How answers are generated for evaluation: a vLLM server, or transformers in-process (a fallback
# that must be chosen by name, never fallen back to silently).
EvalBackend = Literal["vllm", "transformers"]


class ServedModel(Frozen):
    """An OpenAI-compatible server (vLLM) and the model name to request from it."""

    base_url: str = Field(description="OpenAI-compatible root, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="The name to request: the served model's or a loaded adapter's.")
    model_path: str = Field(description="What the server started with: LoRA adapters trained on it can be hot-loaded.")
    hot_load_adapters: bool = Field(
        True,
        description="Evaluate LoRA runs by hot-loading their adapters (fast on GPU); otherwise every model is "
        "evaluated by reloading its weights into the server in place (vLLM's CPU LoRA kernels are slow).",
    )
    dtype: str | None = Field(None, description="Its --dtype: a model that needs a server of its own gets the same.")
    reload_updates_tied_head: bool = Field(
        True,
        description="An in-place reload also updates an output layer tied to the embeddings.  vLLM's CPU build "
        "keeps the old one (its repacked copy of the head is not rebuilt), so there a model whose tied embeddings "
        "changed is evaluated on a server of its own.",
    )
    reload_weights: bool = Field(
        True, description="Other models' weights may be reloaded into it in place (our own servers, not a user's)."
    )


class EvalRequest(Frozen):
    """One evaluation: a model scored on a seeded subset of one split of a benchmark."""

    # The server is where answers come from, not what they are: it stays out of the cache key.
    NOT_IN_CACHE_KEY: ClassVar[frozenset[str]] = frozenset({"server"})

    model_path: str = Field(description="The model folder (or Hub id) to score.")
    model_fingerprint: str = Field(description="Names its work folder and samples file, e.g. the run name.")
    benchmark: str = Field(description="Benchmark name, or a task spec's path: what get_benchmark reads.")
    limit: int | None = Field(description="Items scored: the first `limit` of a seeded shuffle; None for all.")
    seed: int
    label: str = Field(description="The result's label: baseline, iteration-3, best-test, ...")
    samples_dir: Path = Field(
        description="Where `<label>-<model_fingerprint>.jsonl` goes; its parent is the workspace."
    )
    backend: EvalBackend = "vllm"
    server: ServedModel | None = Field(None, description="The campaign's server (a live handle, not data).")
    adapter: tuple[str, str] | None = Field(
        None, description="LoRA runs: (adapter folder, the model it was trained on), hot-loaded into the server."
    )
    evaluator: str = Field("", description="The campaign's evaluator fingerprint; a changed benchmark is refused.")
    split: Literal["train", "dev", "test"] = "test"

    def cache_inputs(self) -> dict[str, Any]:
        """What the evaluate task's cache key hashes: every field but those in NOT_IN_CACHE_KEY."""
        return self.model_dump(mode="json", exclude=set(self.NOT_IN_CACHE_KEY))


class EvalResult(Frozen):
    label: str
    benchmark: str
    accuracy: float
    n: int
    n_correct: int
    ci_low: float
    ci_high: float
    unparseable: int = Field(description="Outputs from which no answer could be extracted.")
    over_length: int = Field(0, description="Prompts longer than the model's context: not answered, scored wrong.")
    samples_path: str
    runtime_s: float
    backend: str = Field("", description="What generated the answers: vllm or transformers.")
    split: Literal["train", "dev", "test"] = Field(
        "test", description="Which split it was scored on: dev while a campaign chooses, test once at its end."
    )
