"""Caching: re-running an identical iteration should cost a small fraction of the first run.

Runs one research iteration through Prefect, then the identical iteration again in the same
workspace (train and evaluate are served from Prefect's persisted cache).  Prints both wall
times and their ratio; the target is <= 0.05.
"""

from __future__ import annotations

import time

from _common import iteration_inputs, open_workspace, parse_args, warm_prefect_api


def main() -> None:
    args = parse_args(__doc__ or "")
    workspace = open_workspace(args.workspace)
    print(f"prefect api start: {warm_prefect_api():.1f}s (not counted)")
    from internflow.flows.iteration import research_iteration

    params, context = iteration_inputs(args, workspace)
    iterate = research_iteration.with_options(result_storage=workspace.results_dir)
    timings = []
    for attempt in ("first run", "identical re-run"):
        started = time.monotonic()
        result = iterate(params, context)
        timings.append(time.monotonic() - started)
        print(f"{attempt}: {timings[-1]:.1f}s (accuracy {result.evaluation.accuracy:.3f})")
    print(f"cache_rerun_ratio: {timings[1] / timings[0]:.4f}")


if __name__ == "__main__":
    main()
