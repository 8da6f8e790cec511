"""Evaluation stage: greedy batched generation on the benchmark's held-out test split, answer
extraction, accuracy with n and a 95 % Wilson interval, per-sample outputs saved to the workspace.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import INPUTS, TASK_SOURCE

from internflow.benchmarks import Benchmark, BenchmarkItem, get_benchmark
from internflow.diagnostics import load_samples
from internflow.schemas import EvalResult

__all__ = ["evaluate_model", "on_first_items", "select_items", "wilson_interval"]

_BATCH_SIZE = 32


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval: honest at small n and near 0 or 1, unlike the normal approximation."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def select_items(benchmark: Benchmark, limit: int | None, seed: int) -> list[BenchmarkItem]:
    """The first `limit` items of a seeded shuffle of the test split (all of them for None): the
    same items for every iteration, and a smaller limit gives a prefix of a larger one, so a
    screened iteration's items are among the baseline's."""
    items = benchmark.load("test")
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
    """Accuracy with n, its 95 % Wilson interval and the unparseable count, from per-sample rows."""
    n_correct = sum(1 for s in samples if s["correct"])
    low, high = wilson_interval(n_correct, len(samples))
    return {
        "accuracy": n_correct / len(samples),
        "n": len(samples),
        "n_correct": n_correct,
        "ci_low": low,
        "ci_high": high,
        "unparseable": sum(s["extracted"] is None for s in samples),
    }


def generate(model_path: str, prompts: list[str], max_new_tokens: int) -> list[str]:
    import torch

    from internflow.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(model_path, for_generation=True)
    model.eval()
    chats = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    # Longest first in batches of similar length: less padding, and an OOM shows up at once.
    order = sorted(range(len(chats)), key=lambda i: -len(chats[i]))
    outputs: list[str] = [""] * len(chats)
    for start in range(0, len(order), _BATCH_SIZE):
        batch = order[start : start + _BATCH_SIZE]
        encoded = tokenizer([chats[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(model.device)
        with torch.inference_mode():
            generated = model.generate(  # type: ignore[operator]  # transformers types generate() loosely
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        texts = tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(batch, texts, strict=True):
            outputs[i] = text
    return outputs


@task(name="evaluate", cache_policy=INPUTS + TASK_SOURCE, persist_result=True, retries=1, retry_delay_seconds=5)
def evaluate_model(
    model_path: str,
    model_fingerprint: str,
    benchmark_name: str,
    limit: int | None,
    seed: int,
    label: str,
    samples_dir: Path,
) -> EvalResult:
    started = time.monotonic()
    benchmark = get_benchmark(benchmark_name)
    items = select_items(benchmark, limit, seed)
    outputs = generate(model_path, [benchmark.prompt(item) for item in items], benchmark.max_new_tokens)

    samples = []
    for item, output in zip(items, outputs, strict=True):
        extracted = benchmark.extract(output)
        correct = extracted is not None and benchmark.judge(extracted, item.answer)
        samples.append(
            {
                "id": item.id,
                "prompt": benchmark.prompt(item),
                "output": output,
                "extracted": extracted,
                "expected": item.answer,
                "correct": correct,
            }
        )
    samples_path = samples_dir / f"{label}-{model_fingerprint}.jsonl"
    samples_path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8")

    result = EvalResult(
        label=label,
        benchmark=benchmark_name,
        samples_path=str(samples_path),
        runtime_s=time.monotonic() - started,
        **_scores(samples),
    )
    _publish(result, samples)
    return result


def _cell(text: str | None, width: int = 80) -> str:
    flat = (text or "∅").replace("\n", " ⏎ ").replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _publish(result: EvalResult, samples: list[dict]) -> None:
    worst_first = sorted(samples, key=lambda s: (s["correct"], s["extracted"] is not None))[:15]
    rows = [
        f"| {_cell(s['prompt'], 60)} | {_cell(s['output'])} | {_cell(s['extracted'], 12)} | {s['expected']} "
        f"| {'✅' if s['correct'] else '❌'} |"
        for s in worst_first
    ]
    create_markdown_artifact(
        key="evaluation",
        markdown=(
            f"## {result.label}: {result.accuracy:.1%} on {result.benchmark}\n\n"
            f"n = {result.n}, 95 % CI [{result.ci_low:.1%}, {result.ci_high:.1%}], unparseable: {result.unparseable}; "
            f"samples: `{result.samples_path}`\n\n| prompt | output | extracted | expected | |\n|---|---|---|---|---|\n"
            + "\n".join(rows)
        ),
        description=f"{result.label}: accuracy {result.accuracy:.3f} (n={result.n})",
    )
