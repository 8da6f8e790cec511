"""Evaluation throughput: answers/s of internflow's served path (a vLLM server, answered through
`run_lighteval` + `ServedOpenAIModel`) vs a naive loop that calls transformers' `generate` on one
prompt at a time.  Both answer the same seeded benchmark items greedily, from the same chat-templated
prompts, with the benchmark's `max_new_tokens`.

Only answering is timed: the naive side's model load and the server's start-up are printed apart
and left out of the ratio (a campaign starts its server once and keeps it up; see eval_campaign.py).
Each side answers one untimed warm-up prompt first.  The count of identical answers is a sanity
figure: the server runs in its default dtype (bf16 on a CPU with AMX, as here), the naive loop in
transformers' fp32, so a few answers may differ.
Target: ratio >= 3 on CPU, >= 10 on a GPU.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _common import eval_bench_parser


def parse_args() -> argparse.Namespace:
    return eval_bench_parser(__doc__ or "", items=100, items_help="test items answered by each side").parse_args()


def naive_answers(model_path: str, prompts: list[str], max_new_tokens: int) -> tuple[list[str], float, float, str]:
    """(answers, load seconds, answering seconds, dtype) of a one-prompt-at-a-time `generate` loop."""
    import torch

    from internflow.evaluation.lighteval_models import chat_prompt_ids
    from internflow.models import load_model_and_tokenizer

    started = time.monotonic()
    model, tokenizer = load_model_and_tokenizer(model_path, for_generation=True)
    model.eval()
    load_s = time.monotonic() - started

    def answer(prompt: str) -> str:
        # Rendered and tokenized as ServedOpenAIModel does, so both sides see the same ids.
        ids = torch.tensor([chat_prompt_ids(tokenizer, [prompt])[0]], device=model.device)
        with torch.inference_mode():
            generated = model.generate(  # type: ignore[operator]
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        return tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True)

    answer(prompts[0])  # warm-up: first-call allocations stay out of the timing
    started = time.monotonic()
    answers = [answer(prompt) for prompt in prompts]
    answering_s = time.monotonic() - started
    if torch.cuda.is_available():
        model.cpu()  # the vLLM server that follows claims most of the GPU's memory
        torch.cuda.empty_cache()
    return answers, load_s, answering_s, str(model.dtype).removeprefix("torch.")


def main() -> None:
    args = parse_args()
    import torch
    from transformers import AutoTokenizer

    from internflow.benchmarks import get_benchmark
    from internflow.evaluation.lighteval_models import ServedOpenAIModel
    from internflow.evaluation.lighteval_tasks import run_lighteval
    from internflow.evaluation.scoring import select_items
    from internflow.evaluation.server import VLLMServer
    from internflow.models import resolve_model

    on_gpu = torch.cuda.is_available()
    benchmark = get_benchmark(args.benchmark)
    model_path = resolve_model(args.model)
    items = select_items(benchmark, args.items, args.seed)
    prompts = [benchmark.prompt(item) for item in items]
    work = Path(tempfile.mkdtemp(prefix="internflow-bench-eval-"))
    try:
        # Naive side first and on its own: on a small CPU machine an idle server would still compete.
        naive, naive_load_s, naive_s, naive_dtype = naive_answers(model_path, prompts, benchmark.max_new_tokens)
        print(f"naive generate: {naive_s:.1f}s for {len(items)} answers (model load {naive_load_s:.1f}s, not counted)")

        with VLLMServer(model_path, work / "logs") as server:
            server_dtype = server.dtype
            print(f"vllm server start-up: {server.startup_s:.1f}s (not counted)", flush=True)
            served = ServedOpenAIModel(server.served(), AutoTokenizer.from_pretrained(model_path), str(work / "cache"))
            run_lighteval(benchmark, items[:1], served, work / "warm-up")  # untimed, as the naive side's
            started = time.monotonic()
            rows = run_lighteval(benchmark, items, served, work / "lighteval")
            vllm_s = time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)

    identical = sum(row["output"] == text for row, text in zip(rows, naive, strict=True))
    print(f"model {model_path}; {benchmark.name}, {len(items)} items, max_new_tokens {benchmark.max_new_tokens}")
    print(f"gpu: {'yes' if on_gpu else 'no'}; target ratio >= {10 if on_gpu else 3}")
    print(f"dtypes: naive {naive_dtype}, vllm {server_dtype} (the server's default on this machine)")
    print(f"naive generate: {naive_s:.1f}s, {len(items) / naive_s:.2f} answers/s")
    print(f"vllm (lighteval): {vllm_s:.1f}s, {len(items) / vllm_s:.2f} answers/s")
    print(f"identical answers: {identical}/{len(items)}")
    print(f"eval_throughput_ratio: {naive_s / vllm_s:.2f}")


if __name__ == "__main__":
    main()
