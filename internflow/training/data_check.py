"""What a training run's data must hold, checked before any model is loaded: every column the
method's trainer reads and every column its reward functions take (GRPO's `exact_answer` takes
`answer`), present and filled in every row, and readable as a reference where a reward judges
against it.  Light: imports neither torch nor TRL, so the CLI checks before starting a child.
"""

from __future__ import annotations

import json
from pathlib import Path

from internflow.schemas import TrainRequest

__all__ = ["METHOD_COLUMNS", "check_training_data", "needed_columns"]

# The columns each method's TRL trainer reads (its conversational dataset format).
METHOD_COLUMNS: dict[str, tuple[str, ...]] = {
    "sft": ("prompt", "completion"),
    "dpo": ("prompt", "chosen", "rejected"),
    "grpo": ("prompt",),
}


def needed_columns(method: str, reward_funcs: tuple[str, ...] | list[str], benchmark: str) -> tuple[str, ...]:
    """The method's own columns, then (GRPO) those its reward functions take."""
    from internflow.training.rewards import reward_columns

    columns = METHOD_COLUMNS.get(method, ())
    if method == "grpo":
        columns += tuple(c for c in reward_columns(reward_funcs, benchmark) if c not in columns)
    return columns


def check_training_data(request: TrainRequest) -> tuple[str, ...]:
    """Refuse data that cannot feed this run, naming the file and line: a needed column absent or
    null in a row, or (reward `exact_answer`) a reference the benchmark cannot read.  Returns
    the needed columns."""
    from internflow.benchmarks import get_benchmark

    params = request.params
    columns = needed_columns(params.method, params.reward_funcs, request.benchmark)
    judged = params.method == "grpo" and "exact_answer" in params.reward_funcs
    benchmark = get_benchmark(request.benchmark) if judged else None
    path = Path(request.data.path)
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"data: {path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not JSON: {error}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: not a JSON object")
            lacking = [c for c in columns if row.get(c) is None]
            if lacking:
                raise ValueError(
                    f"{where}: no {lacking} in this row; method {params.method!r}"
                    + (f" with rewards {list(params.reward_funcs)}" if params.method == "grpo" else "")
                    + f" needs {list(columns)} in every row"
                )
            if benchmark is not None and benchmark.reference(row.get("answer")) is None:
                raise ValueError(
                    f"{where}: answer {str(row.get('answer'))[-80:]!r} cannot be read as a {benchmark.name!r} "
                    "reference, so reward 'exact_answer' could never score this row"
                )
    return columns
