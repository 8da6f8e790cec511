"""The models behind the LLM planners (agent/registry.py picks one by the `--planner` spec):
a smolagents chat model per endpoint kind, built lazily from the spec's rest (`<base_url>:<model>`
for openai, `<model>[@<provider>]` for hf, ...), and the bundled planner's local likelihood scorer.

Nothing connects or loads weights until the planner's first proposal, so a bad spec fails fast
in preflight while a good one costs nothing there.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smolagents import Model

__all__ = [
    "LazyModel",
    "LikelihoodScorer",
    "hf_model",
    "litellm_model",
    "openai_model",
    "parse_openai_spec",
    "transformers_model",
]

# An API key for the endpoint, when it needs one: vLLM and Ollama accept anything.
API_KEY_ENV = "INTERNFLOW_PLANNER_API_KEY"
_OPENAI_SPEC = re.compile(r"^(https?://[^/:\s]+(?::\d+)?(?:/[^:\s]*)?):(.+)$")


class LazyModel:
    """Builds the smolagents model on first use (preflight only checks the spec)."""

    def __init__(self, factory: Callable[[], Model]) -> None:
        self._factory = factory
        self._model: Model | None = None

    def get(self) -> Model:
        if self._model is None:
            self._model = self._factory()
        return self._model


def parse_openai_spec(rest: str) -> tuple[str, str]:
    found = _OPENAI_SPEC.match(rest)
    if not found:
        raise ValueError(
            f"planner: expected 'openai:<base_url>:<model>' (e.g. openai:http://127.0.0.1:8000/v1:qwen), got {rest!r}"
        )
    return found.group(1), found.group(2)


def openai_model(rest: str) -> LazyModel:
    if importlib.util.find_spec("openai") is None:
        raise ValueError("planner: the openai backend needs the 'openai' package (pip install openai)")
    base_url, model_id = parse_openai_spec(rest)

    def build() -> Model:
        from smolagents import OpenAIServerModel

        key = os.environ.get(API_KEY_ENV) or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        return OpenAIServerModel(model_id=model_id, api_base=base_url, api_key=key, client_kwargs={"max_retries": 2})

    return LazyModel(build)


def hf_model(rest: str) -> LazyModel:
    model_id, _, provider = rest.partition("@")
    if not model_id:
        raise ValueError("planner: expected 'hf:<model>[@<provider>]'")

    def build() -> Model:
        from smolagents import InferenceClientModel

        return InferenceClientModel(model_id=model_id, provider=provider or None)

    return LazyModel(build)


def litellm_model(rest: str) -> LazyModel:
    if not rest:
        raise ValueError("planner: expected 'litellm:<model>'")
    if importlib.util.find_spec("litellm") is None:
        raise ValueError("planner: the litellm backend needs the 'litellm' package (pip install litellm)")

    def build() -> Model:
        from smolagents import LiteLLMModel

        return LiteLLMModel(model_id=rest)

    return LazyModel(build)


def transformers_model(rest: str) -> LazyModel:
    if not rest:
        raise ValueError("planner: expected 'transformers:<folder or Hub id>'")

    def build() -> Model:
        from smolagents import TransformersModel

        return TransformersModel(model_id=rest, device_map="cpu", max_new_tokens=256)

    return LazyModel(build)


class LikelihoodScorer:
    """Mean per-token log-likelihood of each option given a context, from a local causal LM."""

    def __init__(self, model_path: str | None = None) -> None:
        self.model_path = model_path  # None: the embedded SmolLM2, materialized on first use

    def score(self, context: str, options: list[str]) -> list[float]:
        import torch

        model, tokenizer = _load(self._resolved())
        prefix = tokenizer.apply_chat_template(
            [{"role": "user", "content": context}], tokenize=False, add_generation_prompt=True
        )
        prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        sequences = [tokenizer(option, add_special_tokens=False)["input_ids"] for option in options]
        # Keep the end of a context longer than the model's window: the options must fit after it.
        limit = getattr(model.config, "max_position_embeddings", None) or 2048
        prefix_ids = prefix_ids[-(limit - max(len(s) for s in sequences)) :]
        width = len(prefix_ids) + max(len(s) for s in sequences)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(options), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, option_ids in enumerate(sequences):
            full = prefix_ids + option_ids
            ids[row, : len(full)] = torch.tensor(full)
            mask[row, : len(full)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float().cpu()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        scores = []
        for row, option_ids in enumerate(sequences):
            start = len(prefix_ids) - 1  # logits at position t predict token t+1
            scores.append(float(logprobs[row, start : start + len(option_ids)].mean()))
        return scores

    def _resolved(self) -> str:
        if self.model_path:
            return self.model_path
        from internflow.models import DEFAULT_MODEL, resolve_model

        return resolve_model(DEFAULT_MODEL)


@cache
def _load(path: str):  # type: ignore[no-untyped-def]  # (model, tokenizer), loaded once per process
    from internflow.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(path)
    model.eval()
    return model, tokenizer
