"""GPU check of internflow's training path (issue 14): runs on any CUDA machine, without network.

It builds a SmolLM2-135M-shaped Llama with random weights in-process (30 layers, hidden 576,
vocab 49,152; a byte-level BPE trained on the bundled arithmetic rows, filled up to the vocab),
then runs, each training as `python -m internflow.training REQUEST.json` (what every execution
backend launches):

(a) the real out-of-memory case: SFT of 4,096 rows of ~1,000 tokens at per_device_train_batch_size
    4096, max_length 1024; it must recover and finish its steps at the largest batch that fits.
    The attempts it printed are shown.
(b) throughput: tokens/s and model-FLOP utilisation of internflow's GPU recipe vs a bare TRL
    script with TRL's defaults, on the same data (the bundled arithmetic rows), with the same
    hyperparameters, same steps, loss curves side by side.  Headline: 32 rows × 4 accumulation;
    then the issue's own measurement, 32 × 1, where the recipe can only make each pass cheaper
    (it keeps the rows per optimizer step the planner chose).  Tokens are TRL's own count
    (`num_tokens`) over the trainer's own loop time (`train_runtime`), as bench/train_throughput.py
    reads them; internflow's time includes the checkpoints its path writes.  FLOPs per token:
    6 × parameters + 12 × layers × hidden × mean row length (PaLM's estimate, attention
    included); the peak is the GPU's dense bf16 figure (989 TFLOP/s for an H100/H200 SXM) or
    --peak-tflops.
(c) SFT, DPO and GRPO, each full and LoRA, a few steps.

The last line is `gpu_train_speedup_vs_trl_defaults: N`, the tokens/s ratio of (b)'s headline.
Without CUDA it says so and exits 0 (`--cpu-smoke` runs every part on the CPU at toy sizes, to
check the script).

On the device machine nothing can be fetched: carry the wheels bench/gpu_wheels.sh downloads, and
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
  PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD python3 bench/gpu_check.py
which should take 6 to 9 minutes on an H200 (not yet run there); `--parts a` then `--parts b,c`
split it over two calls.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CATALOG = ROOT / "internflow" / "catalog"
PEAK_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}  # dense, SXM


@dataclass(frozen=True)
class Scale:
    """Model and run sizes: the issue's on a GPU, toy ones for --cpu-smoke."""

    layers: int = 30
    hidden: int = 576
    intermediate: int = 1536
    heads: int = 9
    kv_heads: int = 3
    oom_rows: int = 4096
    oom_tokens: int = 1000
    oom_max_length: int = 1024
    oom_steps: int = 2
    speed_batch: int = 32
    speed_accumulation: int = 4
    speed_steps: int = 30
    method_steps: int = 3


SMOKE = Scale(
    layers=2,
    hidden=64,
    intermediate=128,
    heads=1,
    kv_heads=1,
    oom_rows=16,
    oom_tokens=100,
    oom_max_length=128,
    speed_batch=4,
    speed_accumulation=2,
    speed_steps=10,
    method_steps=2,
)

BARE_TRL = """
import json, sys
from datasets import load_dataset
from trl import SFTConfig, SFTTrainer

s = json.loads(sys.argv[1])
config = SFTConfig(
    output_dir=s["output_dir"], report_to="none", disable_tqdm=True, max_steps=s["steps"],
    per_device_train_batch_size=s["batch"], gradient_accumulation_steps=s["accumulation"],
    learning_rate=s["learning_rate"], lr_scheduler_type="constant_with_warmup", warmup_steps=0,
    max_length=s["max_length"], seed=0, use_cpu=s["use_cpu"],
)
dataset = load_dataset("json", data_files=s["data"], split="train")
trainer = SFTTrainer(model=s["model"], args=config, train_dataset=dataset)
trainer.train()
print("bare-log-history: " + json.dumps(trainer.state.log_history), flush=True)
"""


def build_model(folder: Path, scale: Scale, corpus: list[str]) -> int:
    """A SmolLM2-135M-shaped random Llama and a 49,152-token chat tokenizer; returns the parameter count."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab_size, specials = 49_152, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=4096, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    spec = json.loads(bpe.to_str())
    vocab = spec["model"]["vocab"]
    for filler in range(vocab_size - len(vocab)):  # never produced; they give the LM head its real width
        vocab[f"<|filler_{filler}|>"] = len(vocab)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)), eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    assert len(tokenizer) == vocab_size, len(tokenizer)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=scale.hidden,
        intermediate_size=scale.intermediate,
        num_hidden_layers=scale.layers,
        num_attention_heads=scale.heads,
        num_key_value_heads=scale.kv_heads,
        head_dim=64,
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 100_000.0},
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def catalog_rows(name: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (CATALOG / name / "data.jsonl").open()]
    if name == "arithmetic-direct":  # question/answer → chat prompt/completion
        rows = [
            {
                "prompt": [{"role": "user", "content": r["question"]}],
                "completion": [{"role": "assistant", "content": r["answer"]}],
            }
            for r in rows
        ]
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def long_rows(model: Path, count: int, tokens: int) -> list[dict[str, Any]]:
    """`count` SFT rows of about `tokens` tokens each: random sums to copy out."""
    from transformers import AutoTokenizer

    tokenizer, rng = AutoTokenizer.from_pretrained(model), random.Random(0)
    words = lambda n: " ".join(str(rng.randrange(1000)) for _ in range(n))  # noqa: E731
    per_word = len(tokenizer(words(200))["input_ids"]) / 200
    n = max(1, int(tokens / per_word))
    return [
        {
            "prompt": [{"role": "user", "content": "Copy: " + (text := words(n // 2))}],
            "completion": [{"role": "assistant", "content": text}],
        }
        for _ in range(count)
    ]


def run_child(command: list[str], work: Path, timeout: float) -> tuple[int, str]:
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "TRACKIO_DIR": str(work / "trackio"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TQDM_DISABLE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as expired:
        text = [
            s.decode(errors="replace") if isinstance(s, bytes) else (s or "") for s in (expired.stdout, expired.stderr)
        ]
        return 124, "\n".join([*text, f"(timed out after {timeout:.0f} s)"])
    return done.returncode, done.stdout + "\n" + done.stderr


def train_ours(work: Path, model: Path, data: Path, run: str, timeout: float, **params: Any) -> tuple[dict | None, str]:
    """One `python -m internflow.training` run: (result.json or failure.json as a dict, its output)."""
    from internflow.schemas import IterationParams, PreparedDataset, TrainRequest

    rows = sum(1 for _ in data.open())
    request = TrainRequest(
        init_model=str(model),
        init_fingerprint="gpu-check",
        run_name=run,
        trackio_project="gpu-check",
        data=PreparedDataset(path=str(data), rows=rows, sources=(), fingerprint=run),
        params=IterationParams.model_validate(
            {"learning_rate": 1e-4, "warmup_steps": 0, "lr_scheduler_type": "constant_with_warmup"} | params
        ),
        checkpoint_dir=str(work / "checkpoints" / run),
        model_dir=str(work / "models" / run),
        trackio_dir=str(work / "trackio"),
    )
    request_file = work / f"{run}.json"
    request_file.write_text(request.model_dump_json())
    code, output = run_child([sys.executable, "-m", "internflow.training", str(request_file)], work, timeout)
    for name in ("result.json", "failure.json"):
        path = Path(request.checkpoint_dir) / name
        if path.is_file():
            return json.loads(path.read_text()) | {"file": name, "exit": code}, output
    return None, output


def trainer_logs(output: str) -> list[dict[str, float]]:
    """The log dicts the trainer printed (values may be strings like '6.316')."""
    logs = []
    for line in output.splitlines():
        if line.startswith("{'"):
            entry = ast.literal_eval(line)
            logs.append({k: float(v) for k, v in entry.items() if _is_number(v)})
    return logs


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def throughput(logs: list[dict[str, float]]) -> tuple[float, float]:
    """(tokens, seconds): TRL's cumulative `num_tokens` at the last log, the summary's train_runtime."""
    tokens = [e["num_tokens"] for e in logs if "num_tokens" in e][-1]
    return tokens, [e["train_runtime"] for e in logs if "train_runtime" in e][-1]


def part_a(work: Path, model: Path, scale: Scale) -> None:
    print(
        f"\n(a) real out of memory: SFT of {scale.oom_rows} rows of ~{scale.oom_tokens} tokens, "
        f"per_device_train_batch_size={scale.oom_rows}, max_length={scale.oom_max_length}",
        flush=True,
    )
    data = write_jsonl(work / "long.jsonl", long_rows(model, scale.oom_rows, scale.oom_tokens))
    started = time.monotonic()
    outcome, output = train_ours(
        work,
        model,
        data,
        "oom",
        900,
        max_steps=scale.oom_steps,
        per_device_train_batch_size=scale.oom_rows,
        max_length=scale.oom_max_length,
    )
    for line in output.splitlines():
        if line.startswith("internflow:"):
            print("  " + line[:400], flush=True)
    if outcome is None or outcome["file"] != "result.json":
        print(f"  FAILED: {json.dumps(outcome)[:1500] if outcome else output[-3000:]}")
        return
    batch, accumulation = outcome["per_device_train_batch_size"], outcome["gradient_accumulation_steps"]
    losses = [round(p["loss"], 4) for p in outcome["losses"]]
    print(
        f"  finished {outcome['steps']}/{scale.oom_steps} steps at per_device_train_batch_size={batch} "
        f"gradient_accumulation_steps={accumulation}, losses {losses}, {time.monotonic() - started:.0f} s",
        flush=True,
    )


def part_b(work: Path, model: Path, scale: Scale, flops_per_token: Any, peak: float | None) -> float | None:
    """The headline comparison (the planner's batch × accumulation given to both sides), then the
    issue's own measurement (no accumulation), which the recipe can speed up only per pass."""
    rows = catalog_rows("arithmetic-direct")
    data = write_jsonl(work / "arithmetic.jsonl", rows)
    print(
        f"\n(b) throughput: SFT on {len(rows)} bundled arithmetic rows, max_length 256, {scale.speed_steps} steps; "
        "bare TRL with its defaults vs internflow's GPU recipe, the same hyperparameters given to both",
        flush=True,
    )
    headline = compare_speed(work, model, data, scale, scale.speed_accumulation, flops_per_token, peak)
    compare_speed(work, model, data, scale, 1, flops_per_token, peak)
    return headline


def compare_speed(
    work: Path, model: Path, data: Path, scale: Scale, accumulation: int, flops_per_token: Any, peak: float | None
) -> float | None:
    import torch

    batch, steps = scale.speed_batch, scale.speed_steps
    print(f"  per_device_train_batch_size {batch} x gradient_accumulation_steps {accumulation}:", flush=True)
    settings = {
        "model": str(model),
        "data": str(data),
        "output_dir": str(work / f"bare-{accumulation}"),
        "steps": steps,
        "batch": batch,
        "accumulation": accumulation,
        "learning_rate": 1e-4,
        "max_length": 256,
        "use_cpu": not torch.cuda.is_available(),
    }
    script = work / "bare_trl.py"
    script.write_text(BARE_TRL)
    code, bare_output = run_child([sys.executable, str(script), json.dumps(settings)], work, 600)
    if code != 0:
        print(f"    bare TRL FAILED ({code}):\n{bare_output[-3000:]}")
        return None
    outcome, ours_output = train_ours(
        work,
        model,
        data,
        f"speed-{accumulation}",
        600,
        max_steps=steps,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        max_length=256,
    )
    if outcome is None or outcome["file"] != "result.json":
        print(f"    internflow FAILED:\n{ours_output[-3000:]}")
        return None
    speeds = {}
    for name, output in (("bare TRL defaults", bare_output), ("internflow GPU recipe", ours_output)):
        tokens, seconds = throughput(trainer_logs(output))
        speeds[name] = tokens / seconds
        flops = flops_per_token(tokens / (steps * batch * accumulation)) * speeds[name]
        mfu = f"MFU {100 * flops / peak:.2f} %" if peak else "MFU n/a (give --peak-tflops)"
        print(f"    {name:<22} {speeds[name]:>10,.0f} tokens/s  {mfu}  ({tokens:,.0f} tokens in {seconds:.1f} s)")
    print(
        f"    internflow ran {outcome['per_device_train_batch_size']} x {outcome['gradient_accumulation_steps']}; "
        f"speedup {speeds['internflow GPU recipe'] / speeds['bare TRL defaults']:.2f}"
    )
    history = next(line for line in bare_output.splitlines() if line.startswith("bare-log-history: "))
    bare = {int(e["step"]): float(e["loss"]) for e in json.loads(history.split(": ", 1)[1]) if "loss" in e}
    ours = {p["step"]: p["loss"] for p in outcome["losses"]}
    print(f"    {'step':>6} {'bare TRL':>10} {'internflow':>11}   (loss; internflow's averaged over the same steps)")
    previous = 0
    for step in sorted(bare):
        window = [loss for s, loss in ours.items() if previous < s <= step]
        print(
            f"    {step:>6} {bare[step]:>10.4f} " + (f"{sum(window) / len(window):11.4f}" if window else f"{'-':>11}")
        )
        previous = step
    return speeds["internflow GPU recipe"] / speeds["bare TRL defaults"]


def part_c(work: Path, model: Path, scale: Scale) -> None:
    print(f"\n(c) every method, full and LoRA, {scale.method_steps} steps each", flush=True)
    data = {
        "sft": write_jsonl(work / "sft.jsonl", catalog_rows("arithmetic-direct")),
        "dpo": write_jsonl(work / "dpo.jsonl", catalog_rows("arithmetic-preference")),
        "grpo": write_jsonl(work / "grpo.jsonl", catalog_rows("arithmetic-prompts")),
    }
    for method, lora in [(m, lora) for m in ("sft", "dpo", "grpo") for lora in (False, True)]:
        run = f"{method}-{'lora' if lora else 'full'}"
        started = time.monotonic()
        outcome, output = train_ours(
            work,
            model,
            data[method],
            run,
            300,
            method=method,
            use_lora=lora,
            max_steps=scale.method_steps,
            per_device_train_batch_size=8,
            max_length=128,
            max_completion_length=32,
        )
        if outcome is None or outcome["file"] != "result.json":
            print(f"  {run:<10} FAILED: {json.dumps(outcome)[:500] if outcome else output[-2000:]}", flush=True)
            continue
        curve = outcome["rewards"] if method == "grpo" else outcome["losses"]
        print(
            f"  {run:<10} ok: {outcome['steps']} steps, {'reward' if method == 'grpo' else 'loss'} "
            f"{[round(p['loss'], 4) for p in curve]}, batch {outcome['per_device_train_batch_size']}"
            f"x{outcome['gradient_accumulation_steps']}, {time.monotonic() - started:.0f} s",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="a,b,c", help="which parts to run (default a,b,c)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, for MFU")
    parser.add_argument("--cpu-smoke", action="store_true", help="run every part on the CPU at toy sizes")
    parser.add_argument("--work", default=None, help="scratch folder (default: a new temporary one)")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available() and not args.cpu_smoke:
        print(
            f"gpu_check: no CUDA device on this machine (torch {torch.__version__}); nothing to check. "
            "Run it on a GPU machine (see the docstring for the device machine's wheels)."
        )
        return 0
    from internflow.training.device import DeviceFacts

    scale = SMOKE if args.cpu_smoke else Scale()
    facts = DeviceFacts.probe()
    name = facts.name
    peak = (
        args.peak_tflops * 1e12
        if args.peak_tflops
        else next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    )
    print(
        f"gpu_check: {name}, torch {torch.__version__}, bf16 {facts.bf16}, liger-kernel {facts.liger}, "
        f"flash-attn {facts.flash_attention}, vllm {facts.vllm}",
        flush=True,
    )
    work = Path(args.work or tempfile.mkdtemp(prefix="internflow-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = [json.dumps(r) for r in catalog_rows("arithmetic-direct")] + [str(n) for n in range(1000)]
    started = time.monotonic()
    parameters = build_model(work / "model", scale, corpus)
    print(
        f"model: random Llama, {scale.layers} layers, hidden {scale.hidden}, vocab 49,152, "
        f"{parameters / 1e6:.1f} M parameters, built in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    parts = set(args.parts.split(","))
    speedup = None
    if "a" in parts:
        part_a(work, work / "model", scale)
    if "b" in parts:
        # FLOPs per trained token, forward and backward, attention over rows of `length` tokens (PaLM, app. B)
        flops_per_token = lambda length: 6 * parameters + 12 * scale.layers * scale.hidden * length  # noqa: E731
        speedup = part_b(work, work / "model", scale, flops_per_token, peak)
    if "c" in parts:
        part_c(work, work / "model", scale)
    print(f"\ngpu_check: {time.monotonic() - started:.0f} s in all; scratch in {work}")
    print(f"gpu_train_speedup_vs_trl_defaults: {'n/a' if speedup is None else f'{speedup:.2f}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
