"""One planning round of 2 iterations run on 2 workers at once, vs the same 2 iterations one by one
(parallel_iterations=1), on this machine's cores.

A throwaway Prefect server on 127.0.0.1, the `iteration` deployment from prefect.yaml on a process
pool, two workers and the `gpu` limit at 2 slots.  The round is the search policy's first round of
two (the recipe and a move around it), each iteration a run of the pool's deployment (as a campaign
with work_pool runs it); the one-by-one side runs the same two, one round each, in a workspace of
its own (no cache shared).  The parallel side goes first, so warm file caches favour the other.

Prints both wall times, then `parallel_round_speedup: N`.  On 2 CPU cores two trainings share the
cores, so expect little: the point is that the round is correct and measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.prefect_server import PrefectServer, prefect_cli  # noqa: E402

POOL = "internflow-process"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m", help="base model (default: the embedded SmolLM2)")
    parser.add_argument("--benchmark", default="arithmetic")
    parser.add_argument("--recipe", default="sft/smoke")
    parser.add_argument("--eval-limit", type=int, default=20)
    return parser.parse_args()


def _round(args: argparse.Namespace, root: Path):  # -> [(Proposal, IterationContext)] per workspace side
    """The base model's baseline and the planner's first round of two, with their contexts."""
    from prefect import flow

    from internflow.agent.search_policy import SearchPolicy
    from internflow.flows.ledger import CampaignLedger
    from internflow.flows.preflight import preflight
    from internflow.schemas import CampaignConfig, EvalRequest
    from internflow.tasks.evaluate import evaluate_model
    from internflow.workspace import Workspace

    def side(name: str):  # type: ignore[no-untyped-def]
        config = CampaignConfig(model=args.model, benchmark=args.benchmark, workspace=str(root / name),
                                recipe=args.recipe, eval_limit=args.eval_limit, eval_backend="transformers",
                                max_iterations=2, parallel_iterations=2, planner="search")  # fmt: skip
        checked = preflight(config)
        workspace = Workspace.open(config.workspace)
        baseline = flow(name="bench-baseline")(
            lambda: evaluate_model(
                EvalRequest(
                    model_path=checked.base_model,
                    model_fingerprint=checked.base_fingerprint,
                    benchmark=config.benchmark,
                    limit=config.eval_limit,
                    seed=config.seed,
                    label="baseline",
                    samples_dir=workspace.samples_dir,
                    backend="transformers",
                    split=config.select_on,
                )
            )
        )()
        ledger = CampaignLedger(config, str(workspace.root), checked.base_model, checked.base_fingerprint, baseline,
                                data=checked.data)  # fmt: skip
        proposals = SearchPolicy().propose_batch(ledger.planner_state(), 2)
        return [(p, ledger.context_for(i + 1)) for i, p in enumerate(proposals)]

    return side("parallel"), side("one-by-one")


def main() -> None:
    args = _args()
    home = Path(tempfile.mkdtemp(prefix="internflow-bench-parallel-"))
    with PrefectServer(home / "prefect") as server:
        os.environ.update({"PREFECT_API_URL": server.env["PREFECT_API_URL"], "INTERNFLOW_OFFLINE": "1"})
        prefect_cli(server.env, "work-pool", "create", POOL, "--type", "process")
        prefect_cli(server.env, "deploy", "--name", "iteration")
        prefect_cli(server.env, "global-concurrency-limit", "create", "gpu", "--limit", "2")
        server.worker(POOL, "gpu-0")
        server.worker(POOL, "gpu-1")

        from internflow.flows.rounds import run_round
        from internflow.work_pools import iteration_deployment

        deployment = iteration_deployment(POOL)
        parallel, one_by_one = _round(args, home)
        started = time.monotonic()
        together = run_round(parallel, home, lambda: time.monotonic() - started, deployment)
        parallel_s = time.monotonic() - started
        started = time.monotonic()
        alone = [run_round([pair], home, lambda: time.monotonic() - started, deployment)[0] for pair in one_by_one]
        sequential_s = time.monotonic() - started

    for outcome in together + alone:
        state = outcome.state
        ok = not hasattr(state, "is_completed") or state.is_completed()  # a result read back, or a final state
        assert ok, f"iteration {outcome.index} did not complete: {state}"
    print(f"model {args.model}, recipe {args.recipe}, {os.cpu_count()} CPU cores")
    print(f"round of 2 iterations on 2 workers (parallel_iterations=2): {parallel_s:.1f}s")
    print(f"the same 2 iterations one by one (parallel_iterations=1): {sequential_s:.1f}s")
    print(f"parallel_round_speedup: {sequential_s / parallel_s:.2f}")


if __name__ == "__main__":
    main()
