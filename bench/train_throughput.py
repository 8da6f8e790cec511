"""Training throughput: tokens/s of internflow's training path (`python -m internflow.training`,
SFT) vs a bare TRL script with the same model, data and settings, both as child processes.

Tokens/s is the trainer's own count of trained tokens (`num_tokens`) over its own training-loop
time (`train_runtime`), read the same way from both sides' output, so model loading and process
start are excluded from both.  Runs interleave (bare, ours, bare, ours, ...) and each side keeps
its median, which damps the noise of a shared machine.  Target: ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BARE_SCRIPT = """
import sys, json, torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

settings = json.loads(sys.argv[1])
tokenizer = AutoTokenizer.from_pretrained(settings["model"])
model = AutoModelForCausalLM.from_pretrained(settings["model"], dtype=torch.float32)
dataset = load_dataset("json", data_files=settings["data"], split="train")
on_cpu = not torch.cuda.is_available()
config = SFTConfig(
    output_dir=settings["output_dir"], run_name="bare", project="bench", report_to="trackio",
    max_steps=settings["max_steps"], per_device_train_batch_size=settings["batch"], learning_rate=1e-4,
    lr_scheduler_type="constant_with_warmup", warmup_steps=0, max_length=settings["max_length"],
    logging_steps=1, save_strategy="steps", save_steps=max(10, settings["max_steps"] // 5), save_total_limit=1,
    use_cpu=on_cpu, bf16=not on_cpu and torch.cuda.is_bf16_supported(), disable_tqdm=True, dataloader_num_workers=0,
)
SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer).train()
"""


def tokens_per_second(output: str) -> float:
    """`num_tokens` of the last step log over the summary's `train_runtime`."""
    logs = [ast.literal_eval(line) for line in output.splitlines() if line.startswith("{'")]
    tokens = float([entry for entry in logs if "num_tokens" in entry][-1]["num_tokens"])
    runtime = float([entry for entry in logs if "train_runtime" in entry][-1]["train_runtime"])
    return tokens / runtime


def run(command: list[str], trackio_dir: Path) -> str:
    env = os.environ | {"TRACKIO_DIR": str(trackio_dir), "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="HF model folder (default: a tiny random Llama)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from internflow.schemas import IterationParams, PreparedDataset, TrainRequest

    work = Path(tempfile.mkdtemp(prefix="internflow-bench-throughput-"))
    if args.model is None:
        from tests.tiny_model import build_tiny_model

        args.model = str(build_tiny_model(work / "tiny-model"))
    rows = [json.loads(line) for line in (ROOT / "internflow/catalog/arithmetic-direct/data.jsonl").open()]
    data = work / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": [{"role": "user", "content": row["question"]}],
                    "completion": [{"role": "assistant", "content": row["answer"]}],
                }
            )
            + "\n"
            for row in rows
        )
    )
    bare_script = work / "bare_trl.py"
    bare_script.write_text(BARE_SCRIPT)

    ours: list[float] = []
    bare: list[float] = []
    for repeat in range(args.repeats):
        settings = {
            "model": args.model,
            "data": str(data),
            "output_dir": str(work / f"bare-{repeat}"),
            "max_steps": args.steps,
            "batch": args.batch,
            "max_length": args.max_length,
        }
        bare.append(tokens_per_second(run([sys.executable, str(bare_script), json.dumps(settings)], work / "trackio")))
        request = TrainRequest(
            init_model=args.model,
            init_fingerprint="bench",
            data=PreparedDataset(path=str(data), rows=len(rows), sources=(), fingerprint="bench"),
            params=IterationParams(
                method="sft",
                max_steps=args.steps,
                per_device_train_batch_size=args.batch,
                learning_rate=1e-4,
                lr_scheduler_type="constant_with_warmup",
                warmup_steps=0,
                max_length=args.max_length,
            ),
            checkpoint_dir=str(work / f"ours-{repeat}"),
            model_dir=str(work / f"ours-{repeat}-model"),
            trackio_dir=str(work / "trackio"),
            trackio_project="bench",
            run_name=f"ours-{repeat}",
        )
        request_file = work / f"request-{repeat}.json"
        request_file.write_text(request.model_dump_json())
        ours.append(
            tokens_per_second(run([sys.executable, "-m", "internflow.training", str(request_file)], work / "trackio"))
        )
        print(f"repeat {repeat + 1}: bare TRL {bare[-1]:.0f} tokens/s, internflow {ours[-1]:.0f} tokens/s", flush=True)

    bare_median, ours_median = statistics.median(bare), statistics.median(ours)
    print(f"model {args.model}; {args.steps} steps of batch {args.batch}, max_length {args.max_length}")
    print(f"bare TRL:   {bare_median:.0f} tokens/s (median of {args.repeats})")
    print(f"internflow: {ours_median:.0f} tokens/s (median of {args.repeats})")
    print(f"train_throughput_ratio: {ours_median / bare_median:.3f}")


if __name__ == "__main__":
    main()
