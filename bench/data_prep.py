"""Throughput of the data gate: format reading + quality checks + decontamination on 100k
synthetic rows against a 5k-item eval set, stage by stage, in one run.

    python bench/data_prep.py [--rows 100000] [--eval-items 5000]

The rows mimic the arithmetic catalog (a fixed template, three-digit sums) with 2 % exact
duplicates, 3 % wrong answers and 1 % eval items mixed in, so every check has work to do.  The
last line is the headline: rows per second for reading + quality + decontamination together.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from internflow.data.decontamination import EvalIndex  # noqa: E402
from internflow.data.formats import to_example  # noqa: E402
from internflow.data.quality import QualityConfig, answer_check_for, check_rows  # noqa: E402

TEMPLATES = (
    "State the final answer to the following arithmetic problem: {a} + {b} =",
    "What is {a} + {b}? Reply with the number only.",
    "Compute the sum of {a} and {b}, showing no work: {a} + {b} =",
)


def synthetic(rows: int, eval_items: int, seed: int = 0) -> tuple[list[dict], list[str]]:
    rng = random.Random(seed)

    def item() -> tuple[str, int]:
        a, b = rng.randrange(1000), rng.randrange(1000)
        return rng.choice(TEMPLATES).format(a=a, b=b), a + b

    evals = [item()[0] for _ in range(eval_items)]
    data = []
    for i in range(rows):
        roll = rng.random()
        if roll < 0.02 and data:
            data.append(dict(data[-1]))  # exact duplicate
            continue
        question, answer = item()
        if roll < 0.03:
            question = evals[i % eval_items]  # a leaked eval item (its answer unchecked here)
        elif roll < 0.06:
            answer += rng.choice((-1, 1, 10))  # wrong answer
        data.append({"question": question, "answer": str(answer)})
    return data, evals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--eval-items", type=int, default=5_000)
    args = parser.parse_args()
    data, evals = synthetic(args.rows, args.eval_items)

    started = time.perf_counter()
    gate = EvalIndex(evals)
    index_s = time.perf_counter() - started

    started = time.perf_counter()
    examples = [(f"rows:{i}", to_example(row, f"rows:{i}"), row) for i, row in enumerate(data, start=1)]
    read_s = time.perf_counter() - started

    started = time.perf_counter()
    contaminated = {id(ex) for _, ex, _ in examples if gate.is_contaminated(ex.prompt_text)}
    decontamination_s = time.perf_counter() - started

    started = time.perf_counter()
    skip = lambda ex: "test_overlap" if id(ex) in contaminated else None  # noqa: E731
    result = check_rows(examples, QualityConfig(), answer_check_for("arithmetic"), skip=skip)
    quality_s = time.perf_counter() - started

    total_s = read_s + decontamination_s + quality_s
    n = len(data)
    print(f"rows: {n}, eval items: {len(evals)} (index built in {index_s:.2f} s, {len(gate.grams)} n-grams)")
    print(f"{'stage':<18}{'seconds':>9}{'rows/s':>12}")
    for stage, seconds in (("read formats", read_s), ("decontamination", decontamination_s), ("quality", quality_s)):
        print(f"{stage:<18}{seconds:>9.2f}{n / seconds:>12,.0f}")
    print(f"{'all three':<18}{total_s:>9.2f}{n / total_s:>12,.0f}")
    print(f"kept {len(result.kept)}, rejected {dict(result.rejected)}")
    print(f"data_prep_rows_per_s: {n / total_s:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
