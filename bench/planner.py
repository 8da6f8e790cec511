"""The planner's added wall time per iteration, as a fraction of the iteration's time.

In one run: one research iteration on the real model (the demo's recipe), then the plan task
with the bundled SmolLM2 planner twice inside the same flow (reading that iteration back from
Prefect, building the digest, ranking candidates, guard review): the first call includes loading
SmolLM2, the second is the steady state of a campaign; the headline is the slower of the two.
Target: <= 0.10 of an iteration.
"""

from __future__ import annotations

import time

from _common import iteration_inputs, open_workspace, parse_args, warm_prefect_api


def main() -> None:
    args = parse_args(__doc__ or "")
    workspace = open_workspace(args.workspace)
    print(f"prefect api start: {warm_prefect_api():.1f}s (not counted)")
    from prefect import flow

    from internflow.agent.planner import PlannerState
    from internflow.benchmarks import get_benchmark
    from internflow.catalog import validate_catalog
    from internflow.flows.iteration import research_iteration
    from internflow.schemas import CampaignConfig
    from internflow.tasks.plan import plan_next_iteration

    params, context = iteration_inputs(args, workspace)
    benchmark = get_benchmark(args.benchmark)
    config = CampaignConfig(
        model=args.model, benchmark=args.benchmark, workspace=str(workspace.root), planner="bundled"
    )

    @flow(name="bench-planner")
    def bench() -> tuple[float, float, float]:
        started = time.monotonic()
        result = research_iteration.with_options(result_storage=workspace.results_dir)(params, context, "recipe")
        iteration_s = time.monotonic() - started
        state = PlannerState(
            config=config,
            baseline=context.baseline,
            history=(result,),
            datasets=tuple(entry.name for entry in validate_catalog(benchmark.name)),
            default_datasets=benchmark.default_datasets,
        )
        timings = []
        for _ in range(2):
            started = time.monotonic()
            proposal = plan_next_iteration(state)
            timings.append(time.monotonic() - started)
            print(f"planner proposed: {getattr(proposal, 'rationale', None) or proposal}")
        return iteration_s, timings[0], timings[1]

    iteration_s, cold_s, warm_s = bench()
    print(f"iteration: {iteration_s:.1f}s")
    print(f"planner, first call (loads SmolLM2): {cold_s:.1f}s = {cold_s / iteration_s:.3f} of an iteration")
    print(f"planner, steady state: {warm_s:.1f}s = {warm_s / iteration_s:.3f} of an iteration")
    print(f"planner_overhead_fraction: {max(cold_s, warm_s) / iteration_s:.3f}")


if __name__ == "__main__":
    main()
