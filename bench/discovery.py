"""Hub to trainable rows: from the first search query to a vetted training JSONL, for a 20k-row
parquet dataset served by a local Hub on 127.0.0.1 (tests/local_hub.py), through the real code
paths (datasets-server inspection, revision pinning, `datasets.load_dataset`, the decontamination
gate against the target's 200 test items, quality checks, TRL conversion).

    .venv/bin/python bench/discovery.py [--rows 20000]

Prints each phase, the same run again from the workspace's caches side by side, and last
`hub_to_trainable_rows_per_s: N` (rows written to the training JSONL per second of the cold run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hub_data import gsm_items  # noqa: E402
from tests.local_hub import HubRepo, LocalHub  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the served training dataset")
    args = parser.parse_args()

    items = gsm_items(2002, args.rows + 500)
    # The target's own repository: its test split, and the training split its dev slice is carved from.
    test, own, train = items[:200], items[200:500], items[500:]
    rows = lambda part: [{"question": i["question"], "answer": i["answer"]} for i in part]  # noqa: E731
    hub = LocalHub(
        [
            HubRepo("openai/gsm8k", {"main": {"train": rows(own), "test": rows(test)}}, downloads=400_000),
            HubRepo("example/gsm8k-large-train", {"default": {"train": rows(train)}}, downloads=9_000),
        ]
    ).__enter__()
    workspace = Path(tempfile.mkdtemp(prefix="internflow-bench-discovery-"))
    # Before datasets and huggingface_hub are imported: they read these once.
    os.environ.update(hub.env() | {"HF_HOME": str(workspace / "hf-home"), "HF_DATASETS_CACHE": str(workspace / "hf")})
    for switch in ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE", "HF_TOKEN"):
        os.environ.pop(switch, None)

    from internflow.benchmarks import get_benchmark
    from internflow.data.selection import select_training_data
    from internflow.data.vetting import DataPaths, prepare_training_data
    from internflow.schemas import CampaignConfig

    benchmark = get_benchmark("gsm8k")
    benchmark.load("test"), benchmark.load("dev")  # the target's test and dev items: read before timing
    config = CampaignConfig(benchmark="gsm8k", hub_datasets=1, data_row_budget=args.rows)
    paths = DataPaths(workspace / "data" / "hub", workspace / "hf-cache", row_budget=args.rows)

    def query_to_jsonl(label: str) -> tuple[float, int]:
        started = time.perf_counter()
        plan = select_training_data(benchmark, config, paths, workspace / "data", "sft")
        vetted = time.perf_counter()
        source = next(s for s in plan.sources if s.repo == "example/gsm8k-large-train")
        prepared = prepare_training_data(
            [source], benchmark, paths, workspace / "data", method="sft", max_train_samples=args.rows, seed=0
        )
        done = time.perf_counter()
        check = prepared.checks[0]
        print(
            f"{label}: discovery + pin + download + vetting {vetted - started:.1f} s, training JSONL "
            f"{done - vetted:.1f} s; {check.rows_in} rows in, {prepared.rows} written "
            f"({dict(check.rejected)} quarantined) → {prepared.path}",
            flush=True,
        )
        return done - started, prepared.rows

    cold_s, written = query_to_jsonl("cold (Hub)")
    warm_s, _ = query_to_jsonl("warm (workspace caches)")
    print(f"cold {cold_s:.1f} s vs warm {warm_s:.1f} s: warm_over_cold_ratio {warm_s / cold_s:.3f}")
    print(f"hub requests: {len(hub.requests)}")
    hub.__exit__(None, None, None)
    print(f"hub_to_trainable_rows_per_s: {written / cold_s:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
