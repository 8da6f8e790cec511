"""The two generation backends, as lighteval models: a vLLM server (the default) and transformers
in the evaluating process (the explicit fallback).

Both render each prompt with the model's own chat template into token ids here, so both see
exactly the same input; both decode the answer tokens with the same tokenizer.  Any difference
between their scores is then a difference in the greedy tokens themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lighteval.models.abstract_model import LightevalModel, ModelConfig
from lighteval.models.model_output import ModelResponse
from lighteval.tasks.requests import Doc
from lighteval.utils.cache_management import SampleCache

from internflow.evaluation.server import EvalServerError
from internflow.schemas import ServedModel

logger = logging.getLogger(__name__)

__all__ = ["InProcessTransformersModel", "ServedOpenAIModel", "chat_prompt_ids", "cut_at_stop"]

_TRANSFORMERS_BATCH = 32
_REQUEST_CHUNK = 64  # prompts per completions request; a few in flight keep the server's batch full
_REQUESTS_IN_FLIGHT = 4


class _InternflowModelConfig(ModelConfig):
    """lighteval keys its sample cache on this; it stays off (Prefect caches whole evaluations)."""

    model_name: str
    cache_dir: str


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return text if cut < 0 else text[:cut]


def chat_prompt_ids(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    """Each prompt as a user turn in the model's chat template, ready for the answer: token ids, the
    template's own special tokens only (no second BOS)."""
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def left_padded(prompts: list[list[int]], pad: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) tensors of a batch padded on the left, so every answer a
    decoder-only model generates starts right after its own prompt."""
    import torch

    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def _up_to_eos(tokens: list[int], eos: set[int]) -> list[int]:
    """The answer through its end-of-sequence token: what follows is padding."""
    for position, token in enumerate(tokens):
        if token in eos:
            return tokens[: position + 1]
    return tokens


class _ChatGenerativeModel(LightevalModel):
    """Greedy generation only: the bundled and catalog tasks are all generative."""

    def __init__(self, tokenizer: Any, name: str, cache_dir: str) -> None:
        self._tokenizer = tokenizer
        self.config = _InternflowModelConfig(model_name=name, cache_dir=cache_dir)
        self._cache = SampleCache(self.config)
        self.over_length: dict[str, int] = {}  # doc id → prompt tokens, for prompts that did not fit

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def add_special_tokens(self) -> bool:
        return False

    @property
    def max_length(self) -> int:
        return int(getattr(self._tokenizer, "model_max_length", 2048))

    def prompt_ids(self, docs: Sequence[Doc]) -> list[list[int]]:
        return chat_prompt_ids(self._tokenizer, [doc.query for doc in docs])

    @property
    def context_length(self) -> int | None:
        """Longest prompt + answer the model takes, in tokens; None when unknown."""
        return None

    def greedy_until(self, docs: list[Doc]) -> list[ModelResponse]:
        """Greedy answers; a prompt that leaves no room for an answer in the model's context is not
        generated (its answer is empty) and recorded in `over_length` (doc id → prompt tokens), the
        same on both backends, so the other items are still scored."""
        if not docs:
            return []
        max_new_tokens = docs[0].generation_size or 256
        stop = tuple(docs[0].stop_sequences or ())
        prompts = self.prompt_ids(docs)
        limit = self.context_length
        fits = [i for i, prompt in enumerate(prompts) if limit is None or len(prompt) < limit]
        for i in sorted(set(range(len(prompts))) - set(fits)):
            # lighteval renumbers doc.id; the item's own id travels in `specific` (lighteval_tasks).
            self.over_length[str((docs[i].specific or {}).get("id", docs[i].id))] = len(prompts[i])
        if len(fits) < len(prompts):
            logger.warning(
                "%d of %d prompts do not fit the model's context (%s tokens): marked over_length, not answered",
                len(prompts) - len(fits), len(prompts), limit,
            )  # fmt: skip
        answers: list[list[int]] = [[] for _ in prompts]
        generated = self.generate_ids([prompts[i] for i in fits], max_new_tokens, stop) if fits else []
        for i, answer in zip(fits, generated, strict=True):
            # An answer ends where the context does, as vLLM ends it (its max_tokens is clamped so).
            answers[i] = answer if limit is None else answer[: limit - len(prompts[i])]
        responses = []
        for doc, prompt, answer in zip(docs, prompts, answers, strict=True):
            text = cut_at_stop(self._tokenizer.decode(answer, skip_special_tokens=True), stop)
            responses.append(ModelResponse(input=doc.query, input_tokens=prompt, text=[text], output_tokens=[answer]))
        return responses

    def generate_ids(self, prompts: list[list[int]], max_new_tokens: int, stop: tuple[str, ...]) -> list[list[int]]:
        raise NotImplementedError

    def loglikelihood(self, docs: list[Doc]) -> list[ModelResponse]:
        raise NotImplementedError("internflow evaluates generative tasks only (greedy answers, extracted and judged)")

    def loglikelihood_rolling(self, docs: list[Doc]) -> list[ModelResponse]:
        raise NotImplementedError("internflow evaluates generative tasks only (greedy answers, extracted and judged)")


class ServedOpenAIModel(_ChatGenerativeModel):
    """Greedy completions from an OpenAI-compatible server (vLLM), prompts sent as token ids."""

    def __init__(self, served: ServedModel, tokenizer: Any, cache_dir: str) -> None:
        from openai import OpenAI

        super().__init__(tokenizer, name=served.model, cache_dir=cache_dir)
        self.served = served
        # A local server: the only failures worth retrying are a busy queue's; the rest must surface.
        self._client = OpenAI(base_url=served.base_url, api_key="internflow", max_retries=2, timeout=600)
        self._context: int | None = None

    @property
    def context_length(self) -> int | None:
        """The server's max_model_len for the model (vLLM lists it under /v1/models)."""
        from openai import OpenAIError

        if self._context is None:
            try:
                listed = {m.id: m for m in self._client.models.list()}
            except OpenAIError as error:
                raise EvalServerError(f"{self.served.base_url}/models: {error}") from error
            served = listed.get(self.served.model)
            length = (served.model_extra or {}).get("max_model_len") if served is not None else None
            self._context = int(length) if length else None
        return self._context

    def _complete(self, chunk: list[list[int]], max_new_tokens: int, stop: tuple[str, ...]) -> list[list[int]]:
        from openai import OpenAIError

        try:
            response = self._client.completions.create(
                model=self.served.model,
                prompt=chunk,
                # vLLM refuses a max_tokens above its context, and clamps one that overruns a prompt's room.
                max_tokens=min(max_new_tokens, self.context_length or max_new_tokens),
                temperature=0.0,
                stop=list(stop) or None,
                extra_body={"return_token_ids": True, "skip_special_tokens": True},
            )
        except OpenAIError as error:
            raise EvalServerError(f"{self.served.base_url} ({self.served.model}): {error}") from error
        by_index = sorted(response.choices, key=lambda choice: choice.index)
        return [list(getattr(choice, "token_ids", None) or []) for choice in by_index]

    def generate_ids(self, prompts: list[list[int]], max_new_tokens: int, stop: tuple[str, ...]) -> list[list[int]]:
        chunks = [prompts[i : i + _REQUEST_CHUNK] for i in range(0, len(prompts), _REQUEST_CHUNK)]
        with ThreadPoolExecutor(_REQUESTS_IN_FLIGHT) as pool:
            answers = pool.map(lambda chunk: self._complete(chunk, max_new_tokens, stop), chunks)
            return [ids for chunk_answers in answers for ids in chunk_answers]


class InProcessTransformersModel(_ChatGenerativeModel):
    """transformers' `generate` in this process: the fallback when no vLLM can run, never a default."""

    def __init__(self, model_path: str, cache_dir: str) -> None:
        from internflow.models import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(model_path, for_generation=True)
        # A bare name: lighteval makes <cache_dir>/<name>/, and an absolute path would escape cache_dir.
        super().__init__(tokenizer, name=Path(model_path).name, cache_dir=cache_dir)
        self.model = model.eval()

    @property
    def context_length(self) -> int | None:
        limit = getattr(self.model.config, "max_position_embeddings", None)
        return int(limit) if limit else None

    def _batches(self, prompts: list[list[int]], max_new_tokens: int) -> list[tuple[list[int], int]]:
        """(prompt indices, new tokens) batches: longest first, of similar length (less padding, and an
        OOM shows up at once); a prompt near the context limit gets only the room left, as on vLLM."""
        limit = self.context_length
        room = [max_new_tokens if limit is None else min(max_new_tokens, limit - len(p)) for p in prompts]
        batches: list[tuple[list[int], int]] = []
        for i in sorted(range(len(prompts)), key=lambda i: -len(prompts[i])):
            if batches and batches[-1][1] == room[i] and len(batches[-1][0]) < _TRANSFORMERS_BATCH:
                batches[-1][0].append(i)
            else:
                batches.append(([i], room[i]))
        return batches

    def generate_ids(self, prompts: list[list[int]], max_new_tokens: int, stop: tuple[str, ...]) -> list[list[int]]:
        import torch

        pad = self._tokenizer.pad_token_id
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        answers: list[list[int]] = [[] for _ in prompts]
        for batch, new_tokens in self._batches(prompts, max_new_tokens):
            ids, mask = left_padded([prompts[i] for i in batch], pad)
            width = ids.shape[1]
            with torch.inference_mode():
                generated = self.model.generate(  # type: ignore[operator]  # transformers types generate() loosely
                    input_ids=ids.to(self.model.device),
                    attention_mask=mask.to(self.model.device),
                    max_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=pad,
                )
            for row, i in enumerate(batch):
                answers[i] = _up_to_eos(generated[row, width:].tolist(), eos)
        return answers
