"""Self-distillation by rejection sampling: the starting model's own answers that the task's judge
accepts become SFT rows.

The method of STaR (Zelikman et al., arXiv 2203.14465), RFT (Yuan et al., arXiv 2308.01825) and
ReST-EM (Singh et al., arXiv 2312.06585): sample k answers per training prompt at a temperature
above 0, keep those whose final answer the task's own judge accepts against the row's reference
answer, drop duplicates, and fine-tune on what is left (RFT mixes it with the original rows).
An accepted answer is kept exactly as sampled, worked steps and all.  An answer cut off by the
token cap is never kept: its reasoning is unfinished even when the judge reads a number in it.

The reference answer of a row is its `answer` column when it has one, else the final answer the
benchmark's extractor reads in its completion (what the GRPO rewards and the dataset stage use);
a row without a readable reference cannot be distilled and is counted, not sampled.

Two samplers: a vLLM server's `/v1/completions` (`ServerSampler`: n=k per prompt, prompts sent
as token ids in batches) and transformers' `generate` with sampling in this process
(`TransformersSampler`).  Both render prompts with the model's chat template as training does.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from internflow.benchmarks import Benchmark, get_benchmark
from internflow.files import write_atomic
from internflow.schemas import DatasetCheck, DatasetSource, PreparedDataset, ServedModel

__all__ = [
    "DistillExample",
    "DistillRequest",
    "DistillResult",
    "NothingDistilledError",
    "Sample",
    "Sampler",
    "ServerSampler",
    "TransformersSampler",
    "distill",
    "reference_of",
]

Message = dict[str, str]
Verdict = Literal["accepted", "duplicate", "wrong_answer", "no_answer", "unfinished"]
SOURCE_NAME = "self-distilled"
_REQUEST_CHUNK = 32  # prompts per completions request (each asks for k answers)
_REQUESTS_IN_FLIGHT = 4
_TRANSFORMERS_BATCH = 8  # prompts per generate call (each gives k answers)


class NothingDistilledError(ValueError):
    """No sampled answer passed the judge: there is nothing to train on (the message has the counts)."""


class DistillRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data: PreparedDataset = Field(description="The iteration's prepared SFT rows: their prompts are sampled.")
    model_path: str = Field(description="The model the answers are sampled from (the iteration's starting model).")
    model_fingerprint: str
    benchmark: str = Field(description="The benchmark (or task spec path) whose extractor and judge accept answers.")
    k: int = Field(ge=1, le=64, description="Answers sampled per prompt.")
    temperature: float = Field(gt=0.0, le=2.0)
    max_prompts: int = Field(ge=1, description="Prompts sampled at most (the first rows with a readable reference).")
    max_new_tokens: int = Field(ge=1, description="Token cap per answer: the evaluation's generation budget.")
    keep_original: bool = Field(True, description="Train on the original rows too.")
    seed: int = 0
    out_dir: str = Field(description="Where the distilled training file is written.")


class DistillExample(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt: str
    answer: str
    extracted: str | None
    reference: str
    verdict: Verdict


class DistillResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    data: PreparedDataset = Field(description="What training reads: accepted answers (+ the original rows).")
    prompts: int = Field(description="Prompts sampled.")
    samples: int
    accepted: int = Field(description="Answers the judge accepted, duplicates included.")
    kept: int = Field(description="Accepted answers kept as training rows (duplicates dropped).")
    verdicts: dict[str, int] = Field(default_factory=dict, description="Sampled answers per verdict.")
    accepted_per_prompt: dict[int, int] = Field(
        default_factory=dict, description="How many prompts got 0, 1, ... k accepted answers."
    )
    no_reference: int = Field(0, description="Rows without a readable reference answer: not sampled.")
    examples: tuple[DistillExample, ...] = ()
    runtime_s: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.samples if self.samples else 0.0


class Sample(NamedTuple):
    text: str
    finished: bool  # ended on its own (end-of-sequence), not at the token cap


class Sampler(Protocol):
    def sample(
        self, prompts: list[list[Message]], k: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[Sample]]:
        """k answers per prompt (conversations ending in a user turn), in prompt order."""
        ...


def _chat_ids(tokenizer: Any, prompts: list[list[Message]]) -> list[list[int]]:
    """Each conversation rendered with the model's chat template, ready for the answer, as training
    renders a prompt (the template's own special tokens only)."""
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


class ServerSampler:
    """Answers from an OpenAI-compatible server (vLLM): one completions request per chunk of
    prompts, n=k answers each, a few requests in flight to keep the server's batch full."""

    def __init__(self, served: ServedModel, tokenizer: Any) -> None:
        from openai import OpenAI

        self.served, self.tokenizer = served, tokenizer
        self._client = OpenAI(base_url=served.base_url, api_key="internflow", max_retries=2, timeout=600)

    def _context_length(self) -> int | None:
        """The server's max_model_len for the model (vLLM lists it under /v1/models)."""
        listed = {m.id: m for m in self._client.models.list()}
        served = listed.get(self.served.model)
        length = (served.model_extra or {}).get("max_model_len") if served is not None else None
        return int(length) if length else None

    def sample(
        self, prompts: list[list[Message]], k: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[Sample]]:
        ids = _chat_ids(self.tokenizer, prompts)
        limit = self._context_length()
        fits = [i for i, p in enumerate(ids) if limit is None or len(p) < limit]  # vLLM refuses the others
        chunks = [fits[i : i + _REQUEST_CHUNK] for i in range(0, len(fits), _REQUEST_CHUNK)]

        def complete(number: int, chunk: list[int]) -> list[list[Sample]]:
            response = self._client.completions.create(
                model=self.served.model,
                prompt=[ids[i] for i in chunk],
                n=k,
                temperature=temperature,
                max_tokens=max_new_tokens,
                seed=seed + number,
                extra_body={"skip_special_tokens": True},
            )
            answers: list[list[Sample]] = [[] for _ in chunk]
            for choice in sorted(response.choices, key=lambda c: c.index):  # prompt-major: index = prompt * n + j
                answers[choice.index // k].append(Sample(choice.text, choice.finish_reason == "stop"))
            return answers

        found: list[list[Sample]] = [[] for _ in prompts]
        with ThreadPoolExecutor(_REQUESTS_IN_FLIGHT) as pool:
            for chunk, answers in zip(chunks, pool.map(complete, range(len(chunks)), chunks), strict=True):
                for i, samples in zip(chunk, answers, strict=True):
                    found[i] = samples
        return found


class TransformersSampler:
    """transformers' `generate` with sampling, in this process (the `eval_backend: transformers` path)."""

    def __init__(self, model_path: str) -> None:
        from internflow.models import load_model_and_tokenizer

        model, self.tokenizer = load_model_and_tokenizer(model_path, for_generation=True)
        self.model = model.eval()

    def sample(
        self, prompts: list[list[Message]], k: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[Sample]]:
        import torch

        from internflow.evaluation.lighteval_models import left_padded

        ids = _chat_ids(self.tokenizer, prompts)
        pad = self.tokenizer.pad_token_id
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        torch.manual_seed(seed)
        found: list[list[Sample]] = []
        for start in range(0, len(ids), _TRANSFORMERS_BATCH):
            batch = ids[start : start + _TRANSFORMERS_BATCH]
            input_ids, mask = left_padded(batch, pad)
            width = input_ids.shape[1]
            with torch.inference_mode():
                generated = self.model.generate(  # type: ignore[operator]  # transformers types generate() loosely
                    input_ids=input_ids.to(self.model.device),
                    attention_mask=mask.to(self.model.device),
                    do_sample=True,
                    temperature=temperature,
                    top_k=0,  # plain sampling at the temperature, as the server does
                    top_p=1.0,
                    num_return_sequences=k,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad,
                )
            for row in range(len(batch)):  # rows are prompt-major: k answers of prompt 0, then 1...
                answers = []
                for tokens in generated[row * k : (row + 1) * k, width:].tolist():
                    end = next((i for i, t in enumerate(tokens) if t in eos), None)
                    text = self.tokenizer.decode(tokens[:end], skip_special_tokens=True)
                    answers.append(Sample(str(text), end is not None))
                found.append(answers)
        return found


def _text(messages: list[Message]) -> str:
    return "\n".join(m.get("content", "") for m in messages)


def reference_of(row: dict[str, Any], benchmark: Benchmark) -> str | None:
    """A row's reference answer as the judge compares it: its `answer` column, else the final answer
    the benchmark's extractor reads in its completion; None when neither can be read."""
    if row.get("answer") is not None:
        return benchmark.reference(row["answer"])
    extracted = benchmark.extract(_text(row.get("completion") or []))
    return None if extracted is None else benchmark.reference(extracted)


def _judge(benchmark: Benchmark, sample: Sample, reference: str) -> tuple[Verdict, str | None]:
    if not sample.finished:
        return "unfinished", None
    extracted = benchmark.extract(sample.text)
    if extracted is None:
        return "no_answer", None
    return ("accepted" if benchmark.judge(extracted, reference) else "wrong_answer"), extracted


def _normal(text: str) -> str:
    return " ".join(text.split())


def distill(request: DistillRequest, sampler: Sampler) -> DistillResult:
    """Sample, judge, dedupe and write the training rows (see the module docstring).
    `NothingDistilledError` when no answer is accepted; ValueError when no row has a reference."""
    started = time.monotonic()
    benchmark = get_benchmark(request.benchmark)
    rows = [json.loads(line) for line in Path(request.data.path).read_text(encoding="utf-8").splitlines() if line]
    references = [reference_of(row, benchmark) for row in rows]
    chosen = [i for i, ref in enumerate(references) if ref is not None][: request.max_prompts]
    if not chosen:
        raise ValueError(
            f"self_distill_k: no row of {request.data.path} has a reference answer {benchmark.name!r} can read, "
            "so no sampled answer can be judged"
        )
    prompts = [rows[i]["prompt"] for i in chosen]
    sampled = sampler.sample(prompts, request.k, request.temperature, request.max_new_tokens, request.seed)

    verdicts: Counter[str] = Counter()
    per_prompt: Counter[int] = Counter()
    distilled: list[dict[str, Any]] = []
    examples: dict[str, list[DistillExample]] = {}
    for i, samples in zip(chosen, sampled, strict=True):
        reference = references[i]
        assert reference is not None
        seen = {_normal(_text(rows[i].get("completion") or []))} if request.keep_original else set()
        accepted = 0
        for sample in samples:
            verdict, extracted = _judge(benchmark, sample, reference)
            accepted += verdict == "accepted"
            if verdict == "accepted" and _normal(sample.text) in seen:
                verdict = "duplicate"
            elif verdict == "accepted":
                seen.add(_normal(sample.text))
                distilled.append(
                    {"prompt": rows[i]["prompt"], "completion": [{"role": "assistant", "content": sample.text}]}
                )
            verdicts[verdict] += 1
            shown = examples.setdefault("accepted" if verdict == "accepted" else "rejected", [])
            if len(shown) < 3:
                shown.append(DistillExample(prompt=_text(rows[i]["prompt"]), answer=sample.text, extracted=extracted,
                                            reference=reference, verdict=verdict))  # fmt: skip
        per_prompt[accepted] += 1
    samples_total = sum(verdicts.values())
    if not distilled:
        raise NothingDistilledError(
            f"self-distillation: none of {samples_total} answers sampled from {request.model_path} for "
            f"{len(chosen)} prompts passed the judge of {benchmark.name!r} (verdicts: {dict(verdicts)}); "
            "nothing to train on"
        )

    data = _write(request, rows, distilled, verdicts, samples_total)
    return DistillResult(
        data=data,
        prompts=len(chosen),
        samples=samples_total,
        accepted=verdicts["accepted"] + verdicts["duplicate"],
        kept=len(distilled),
        verdicts=dict(verdicts),
        accepted_per_prompt=dict(sorted(per_prompt.items())),
        no_reference=sum(ref is None for ref in references),
        examples=tuple(examples.get("accepted", []) + examples.get("rejected", [])),
        runtime_s=time.monotonic() - started,
    )


def _write(
    request: DistillRequest,
    rows: list[dict[str, Any]],
    distilled: list[dict[str, Any]],
    verdicts: Counter[str],
    samples: int,
) -> PreparedDataset:
    """The training file (accepted answers, + the original rows), shuffled, content-addressed like
    the dataset stage's, with the distillation's own source and check beside the original ones."""
    mixed = distilled + (rows if request.keep_original else [])
    random.Random(request.seed).shuffle(mixed)
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in mixed)
    fingerprint = hashlib.sha256(f"sft\n{body}".encode()).hexdigest()[:16]
    path = Path(request.out_dir) / f"distill-{fingerprint}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, body)
    accepted = verdicts["accepted"] + verdicts["duplicate"]
    check = DatasetCheck(
        name=SOURCE_NAME,
        format="prompt_completion",
        mapping="prompt←training prompt, completion←sampled answer the judge accepted",
        rows_in=samples,
        rows_kept=len(distilled),
        rejected={reason: n for reason, n in sorted(verdicts.items()) if reason != "accepted"},
        note=f"{request.k} answers a prompt from {request.model_path} at temperature {request.temperature:g}; "
        f"{accepted} of {samples} accepted ({accepted / samples:.0%})",
    )
    source = DatasetSource(
        name=SOURCE_NAME, path=str(path), rows_used=len(distilled), sha256=hashlib.sha256(body.encode()).hexdigest()
    )
    original = request.data
    return original.model_copy(
        update={
            "path": str(path),
            "rows": len(mixed),
            "fingerprint": fingerprint,
            "sources": (original.sources if request.keep_original else ()) + (source,),
            "checks": original.checks + (check,),
        }
    )
