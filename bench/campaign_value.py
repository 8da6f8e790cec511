"""Campaign value on tasks nobody tuned for: one default TRL SFT run vs an internflow campaign with the
same wall-clock budget, scored on the same held-out test split.

    .venv/bin/python bench/campaign_value.py [--tasks 3] [--seed N] [--budget-minutes 10]

Draws `--tasks` tasks at random (the seed is printed; pass it back to repeat a draw) from
reasoning-gym's task list, leaving out every task this repository uses anywhere (chain_sum,
family_relationships, gsm_symbolic), those whose reasoning-gym verifier is not plain exact match (a
task with several right answers, such as puzzle24, would be misjudged by an exact judge), and those
no small model can answer in a few tokens (questions over 600 characters or answers over 24, by a
20-item sample).  For each task it writes a task spec
with disjoint train (2,000), dev (200) and test (200) splits, then, side by side:

- single: TRL's `SFTTrainer` with TRL's defaults on the train split (conversational prompt/completion
  rows, the embedded SmolLM2), as many steps as fit in the budget, then scored on the test split;
- campaign: `internflow run` on the task spec with the same budget (product defaults otherwise: the
  search policy plans), choosing on dev and scoring the test split once at the end.

Both arms are scored by the same evaluator (internflow's, vLLM-served).  It prints per task the
base, single and campaign test accuracy and the campaign's remaining error over the single run's,
(1 - campaign) / (1 - single); under it, the majority-answer baseline (the train split's most
common answer, given to every test item) and whether each arm gave one answer throughout (the
product's `answer_collapse` detector on its test samples: then its score is that answer's share,
not the task); then how many tasks each arm learnt (answers that vary, above the majority answer
beyond sampling noise);
last, `campaign_remaining_error_ratio: <median over tasks>`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

USED_HERE = {"chain_sum", "family_relationships", "gsm_symbolic", "composite"}
SPLITS = {"train": 2000, "dev": 200, "test": 200}


def eligible_tasks() -> list[str]:
    """reasoning-gym tasks with one right answer (verified by exact match) that a 135M model can
    answer in a few tokens, none this repository uses."""
    import reasoning_gym
    from reasoning_gym.dataset import ProceduralDataset
    from reasoning_gym.factory import DATASETS

    names = []
    for name in sorted(set(DATASETS) - USED_HERE):
        try:
            dataset = reasoning_gym.create_dataset(name, size=20, seed=1)
            sample = [dataset[i] for i in range(20)]
        except Exception:  # a generator that needs extra configuration or data: not drawable here
            continue
        if type(dataset).score_answer is not ProceduralDataset.score_answer:
            continue  # a verifier of its own: several answers may be right, which exact matching misjudges
        questions = sorted(len(entry["question"]) for entry in sample)
        if questions[len(questions) // 2] <= 600 and max(len(str(entry["answer"])) for entry in sample) <= 24:
            names.append(name)
    return names


class Unusable(Exception):
    """A drawn task that cannot be benched; the message says why (the draw moves on to the next)."""


def write_task(name: str, folder: Path, seed: int) -> Path:
    """Test, dev and train JSONL files and a task spec judged numerically or by exact text.

    Raises Unusable when the generator fails on this seed's items (reasoning-gym's maze gives up on
    some), or cannot give a train split that the product's decontamination gate passes against dev
    and test (a task whose questions share one template: its train rows would be blocked, and the
    single run would train on near-copies of the test questions)."""
    import reasoning_gym

    from internflow.benchmarks.answers import read_number
    from internflow.data.decontamination import EvalIndex

    dataset = reasoning_gym.create_dataset(name, size=sum(SPLITS.values()) * 3, seed=seed)
    unique, seen = [], set()
    for index in range(len(dataset)):
        try:
            entry = dataset[index]
        except Exception as error:  # the eligibility sample (20 items, seed 1) passed; these did not
            raise Unusable(f"the generator fails on item {index}: {type(error).__name__}: {error}") from error
        if entry["question"] not in seen:
            seen.add(entry["question"])
            unique.append({"question": entry["question"], "answer": str(entry["answer"])})
    random.Random(seed).shuffle(unique)
    held_out = SPLITS["test"] + SPLITS["dev"]
    test, dev = unique[: SPLITS["test"]], unique[SPLITS["test"] : held_out]
    index = EvalIndex(r["question"] for r in test + dev)  # the gate the campaign applies, default settings
    train = [r for r in unique[held_out:] if not index.is_contaminated(r["question"])][: SPLITS["train"]]
    if len(test) + len(dev) < held_out or len(train) < SPLITS["train"]:
        raise Unusable("no train split passes the decontamination gate against dev and test")
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", train), ("dev", dev), ("test", test)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    rows = train + dev + test
    numeric = all(read_number(r["answer"]) is not None for r in rows)
    spec = folder / f"{name}.yaml"
    spec.write_text(
        f"name: {name.replace('_', '-')}\ndata: test.jsonl\ntrain_data: train.jsonl\ndev_data: dev.jsonl\n"
        "prompt_template: '{question}'\nanswer_field: answer\n"
        + ("extraction: number\nmetric: numeric\n" if numeric else "extraction: text\nmetric: exact\n")
        + f"max_new_tokens: 32\ndescription: reasoning-gym {name}\n"
    )
    return spec


def single_run(spec: Path, model: str, budget_s: float, out: Path) -> Path:
    """TRL's SFTTrainer with TRL's defaults on the train split, stopped when the budget is spent."""
    import yaml
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    template = yaml.safe_load(spec.read_text())["prompt_template"]
    rows = [json.loads(line) for line in (spec.parent / "train.jsonl").read_text().splitlines()]
    data = Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": template.format(**r)}],
             "completion": [{"role": "assistant", "content": r["answer"]}]}
            for r in rows
        ]
    )  # fmt: skip
    deadline = time.monotonic() + budget_s

    class Deadline(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            control.should_training_stop = time.monotonic() >= deadline

    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model),
        args=SFTConfig(output_dir=str(out / "checkpoints"), report_to="none", save_strategy="no", use_cpu=True),
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(model),
        callbacks=[Deadline()],
    )
    trainer.train()
    trainer.save_model(str(out / "model"))
    print(f"  single: {trainer.state.global_step} steps in {budget_s / 60:.1f} min", flush=True)
    return out / "model"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT), "INTERNFLOW_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "internflow.deployments.cli", *args], capture_output=True, text=True, env=env
    )


def test_accuracy(model: str, spec: Path, workspace: Path) -> tuple[float, str]:
    """Test accuracy (0–1) and the path of the per-item samples JSONL."""
    done = _cli("evaluate", "--model", model, "--benchmark", str(spec), "--split", "test", "-w", str(workspace))
    found = re.search(r"\(test\): ([\d.]+)%", done.stdout)
    samples = re.search(r"samples: (\S+\.jsonl)", done.stdout)
    if done.returncode != 0 or not found or not samples:
        raise RuntimeError(f"evaluate failed: {done.stderr[-2000:]}")
    return float(found.group(1)) / 100, samples.group(1)


def majority_answer(spec: Path) -> tuple[str, float]:
    """The train split's most common answer (ties: the one met first in the split) and the share of
    test items whose answer it is."""

    def answers(split: str) -> list[str]:
        lines = (spec.parent / f"{split}.jsonl").read_text().splitlines()
        return [str(json.loads(line)["answer"]).strip() for line in lines]

    answer = Counter(answers("train")).most_common(1)[0][0]
    test = answers("test")
    return answer, sum(a == answer for a in test) / len(test)


def collapsed_to(samples: tuple[dict[str, Any], ...]) -> str | None:
    """The one answer an arm gave throughout, by the product's `answer_collapse` detector, else None."""
    from internflow.diagnostics import Evidence, get_detector
    from internflow.diagnostics.outcome import most_given_answer

    most = most_given_answer(samples)
    return most[0] if most and get_detector("answer_collapse")(Evidence(samples=samples)) else None


def learnt(samples: tuple[dict[str, Any], ...], prior: float, collapsed: bool) -> bool:
    """Whether an arm learnt the task: answers that vary (not `collapsed`), and an accuracy above the
    majority answer's beyond sampling noise (the product's two-proportion test, 95 %, on the same n)."""
    from internflow.diagnostics import significant_difference
    from internflow.evaluation.scoring import wilson_interval
    from internflow.schemas import EvalResult

    def scored(label: str, correct: int, n: int) -> EvalResult:
        low, high = wilson_interval(correct, n)
        return EvalResult(
            label=label, benchmark="test", accuracy=correct / n, n=n, n_correct=correct,
            ci_low=low, ci_high=high, unparseable=0, samples_path="", runtime_s=0.0,
        )  # fmt: skip

    n = len(samples)
    arm = scored("arm", sum(bool(s["correct"]) for s in samples), n)
    majority = scored("majority answer", round(prior * n), n)
    return not collapsed and arm.accuracy > prior and significant_difference(arm, majority)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None, help="which tasks are drawn (default: a fresh one)")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--workspace", default=None)
    args = parser.parse_args()

    from internflow.diagnostics import load_samples
    from internflow.models import resolve_model

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10_000)
    print(f"seed {seed}", flush=True)  # first, so that a draw that fails can be repeated
    pool = eligible_tasks()
    root = Path(args.workspace or tempfile.mkdtemp(prefix="internflow-bench-value-"))
    tasks: list[tuple[str, Path]] = []
    for name in random.Random(seed).sample(pool, len(pool)):  # in the seed's order, until enough are usable
        if len(tasks) == args.tasks:
            break
        try:
            tasks.append((name, write_task(name, root / name / "task", seed)))
        except Unusable as why:
            print(f"  {name}: skipped, {why}", flush=True)
    print(f"seed {seed}: {len(tasks)} of {len(pool)} eligible tasks: {', '.join(n for n, _ in tasks)}", flush=True)
    model = resolve_model(args.model)
    budget_s = args.budget_minutes * 60
    ratios, tasks_learnt = [], Counter[str]()
    for name, spec in tasks:
        folder = root / name
        base, _ = test_accuracy(model, spec, folder / "eval")
        single, single_samples = test_accuracy(
            str(single_run(spec, model, budget_s, folder / "single")), spec, folder / "eval"
        )
        started = time.monotonic()
        run = _cli("run", "--model", args.model, "--benchmark", str(spec),
                   "--time-budget-minutes", str(args.budget_minutes), "--max-iterations", "1000",
                   "--workspace", str(folder / "campaign"))  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"campaign on {name} failed: {run.stderr[-2000:]}")
        report = json.loads((folder / "campaign" / "report.json").read_text())
        chosen = report["test_best"] or report["test_baseline"]
        campaign = chosen["accuracy"]
        ratio = (1 - campaign) / (1 - single) if single < 1 else (0.0 if campaign == 1 else float("inf"))
        ratios.append(ratio)
        print(
            f"{name}: base {base:.1%}, single {single:.1%}, campaign {campaign:.1%} "
            f"({len(report['iterations'])} iterations, {(time.monotonic() - started) / 60:.1f} min, stop: "
            f"{report['stop_reason']}); remaining error campaign/single {ratio:.2f}",
            flush=True,
        )
        answer, prior = majority_answer(spec)
        arms = []
        for arm, path in (("single", single_samples), ("campaign", chosen["samples_path"])):
            samples = load_samples(path)
            one = collapsed_to(samples)
            tasks_learnt[arm] += learnt(samples, prior, collapsed=one is not None)
            arms.append(f"{arm} " + (f"answers {one!r} to (nearly) every item" if one else "answers vary"))
        print(f"  majority answer {answer!r}: {prior:.1%} of test; " + "; ".join(arms), flush=True)
    print(f"learnt (answers vary, above the majority answer beyond the noise): single {tasks_learnt['single']} "
          f"of {len(tasks)}, campaign {tasks_learnt['campaign']} of {len(tasks)} tasks")  # fmt: skip
    print(f"campaign_remaining_error_ratio: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
