"""Campaign evaluation wall time: the evaluations of a LoRA campaign (the base model's baseline plus
N iterations, 4 by default) answered by
  (a) one vLLM server kept up for the whole campaign, each iteration's model put on it the way the
      campaign does on this machine (internflow.evaluation.run.campaign_server_for: adapters hot-loaded on a
      GPU; on a CPU, where vLLM applies LoRA by gathering per-token weights, the merged model's
      weights reloaded in place), vs
  (b) a fresh server per evaluation, started on that iteration's merged model and stopped after.
(a') the other kept-up way, adapters hot-loaded, is measured and printed for comparison.
All wall times include every server start-up and stop: saving those is the point of (a).

The adapters are random, untrained LoRAs (seeded per iteration) made here before anything is
timed, each with its merged model beside it, so both modes answer with the same weights; the count
of identical answers across modes is a sanity figure.  (a) runs first, so a cold vLLM compile cache
would count against it, not for it.  Target: ratio (a)/(b) <= 0.6.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _common import eval_bench_parser


def parse_args() -> argparse.Namespace:
    parser = eval_bench_parser(__doc__ or "", items=50, items_help="test items per evaluation")
    parser.add_argument("--iterations", type=int, default=4, help="LoRA iterations after the baseline")
    return parser.parse_args()


def make_adapters(base_path: str, iterations: int, work: Path) -> list[tuple[Path, Path]]:
    """(adapter folder, merged model folder) per iteration: random LoRAs, no training."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    folders = []
    for iteration in range(1, iterations + 1):
        torch.manual_seed(iteration)
        # A fresh base each time: get_peft_model wraps it in place and merging writes into it.
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        config = LoraConfig(
            r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False
        )
        peft_model = get_peft_model(base, config)
        adapter_dir, merged_dir = work / f"adapter-{iteration}", work / f"merged-{iteration}"
        peft_model.save_pretrained(adapter_dir)
        peft_model.merge_and_unload().save_pretrained(merged_dir)
        tokenizer.save_pretrained(merged_dir)
        folders.append((adapter_dir, merged_dir))
    return folders


def main() -> None:
    args = parse_args()
    import torch
    from transformers import AutoTokenizer

    from internflow.benchmarks import get_benchmark
    from internflow.evaluation.lighteval_models import ServedOpenAIModel
    from internflow.evaluation.lighteval_tasks import run_lighteval
    from internflow.evaluation.run import campaign_server_for
    from internflow.evaluation.scoring import select_items
    from internflow.evaluation.server import ServerSettings, VLLMServer
    from internflow.models import resolve_model

    benchmark = get_benchmark(args.benchmark)
    base_path = resolve_model(args.model)
    items = select_items(benchmark, args.items, args.seed)
    work = Path(tempfile.mkdtemp(prefix="internflow-bench-campaign-"))

    def evaluate(served, model_path: str, label: str) -> list[str]:  # -> the answers, in the items' order
        model = ServedOpenAIModel(served, AutoTokenizer.from_pretrained(model_path), str(work / label / "cache"))
        return [row["output"] for row in run_lighteval(benchmark, items, model, work / label)]

    try:
        folders = make_adapters(base_path, args.iterations, work)
        print(f"made {len(folders)} random LoRA adapters and their merged models (not counted)", flush=True)

        def kept_up(served_as, settings: ServerSettings | None = None) -> tuple[float, list[str]]:
            """One server for every evaluation; each iteration's model put on it as `served_as` says."""
            started = time.monotonic()
            with VLLMServer(base_path, work / "logs", settings) as server:
                answers = evaluate(served_as(server.served()), base_path, "kept-up-baseline")
                for iteration, (adapter_dir, merged_dir) in enumerate(folders, start=1):
                    name, adapter = f"iteration-{iteration}", (str(adapter_dir), base_path)
                    served = campaign_server_for(served_as(server.served()), str(merged_dir), name, adapter)
                    answers += evaluate(served, str(merged_dir), f"kept-up-{iteration}")
            return time.monotonic() - started, answers

        # What the campaign does on this machine (internflow.evaluation.run.campaign_server_for): on a GPU it
        # hot-loads each adapter, on a CPU it reloads each merged model's weights into the server.
        kept_up_s, kept_up_answers = kept_up(lambda served: served)
        way = "adapters hot-loaded" if torch.cuda.is_available() else "weights reloaded in place"
        print(f"(a) kept-up server, the campaign's way here ({way}): {kept_up_s:.1f}s, 1 server start", flush=True)
        # The other way, for comparison: adapters hot-loaded (slots sized to their rank, as slots cost here).
        adapters_s, _ = kept_up(
            lambda served: served.model_copy(update={"hot_load_adapters": True}), ServerSettings(max_lora_rank=8)
        )
        print(f"(a') kept-up server, adapters hot-loaded: {adapters_s:.1f}s, 1 server start", flush=True)

        started = time.monotonic()
        per_iteration_starts: list[float] = []
        per_iteration_answers: list[str] = []
        models = [("baseline", base_path)] + [(str(i), str(merged)) for i, (_, merged) in enumerate(folders, start=1)]
        for label, model_path in models:
            with VLLMServer(model_path, work / "logs") as server:
                per_iteration_starts.append(server.startup_s or 0.0)
                per_iteration_answers += evaluate(server.served(), model_path, f"per-iteration-{label}")
        per_iteration_s = time.monotonic() - started
        starts = ", ".join(f"{s:.1f}" for s in per_iteration_starts)
        print(f"server per iteration: {per_iteration_s:.1f}s, {len(per_iteration_starts)} server starts ({starts}s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    identical = sum(a == b for a, b in zip(kept_up_answers, per_iteration_answers, strict=True))
    # Identical answers mean something only if the adapters changed some: a LoRA ignored would also "match".
    baseline = kept_up_answers[: len(items)]
    changed = sum(a != b for a, b in zip(kept_up_answers[len(items) :], baseline * len(folders), strict=True))
    print(f"model {base_path}; {benchmark.name}, {len(items)} items x {len(folders) + 1} evaluations per mode")
    print(f"(a) one server kept up, {way}: {kept_up_s:.1f}s, 1 server start")
    print(f"(a') one server kept up, adapters hot-loaded: {adapters_s:.1f}s ({adapters_s / per_iteration_s:.2f} of b)")
    print(f"(b) a server per evaluation, merged models: {per_iteration_s:.1f}s, {len(per_iteration_starts)} starts")
    print(f"identical answers across modes: {identical}/{len(kept_up_answers)}")
    print(f"answers the adapters changed from the baseline's: {changed}/{len(items) * len(folders)}")
    print("target ratio <= 0.6")
    print(f"eval_campaign_ratio: {kept_up_s / per_iteration_s:.2f}")


if __name__ == "__main__":
    main()
