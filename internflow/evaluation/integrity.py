"""The evaluator is fixed per campaign: its fingerprint covers the test set, the benchmark's prompt,
extraction and judging code, internflow's lighteval task and metric, and lighteval's version.  The
campaign pins it in its workspace when it starts; a later campaign in the same workspace, and every
evaluation, is refused if the evaluator no longer matches — scores from two evaluators are never
compared.  Evaluation imports nothing from training (it reads the saved model folder only).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from importlib.metadata import version
from pathlib import Path

from internflow.benchmarks import Benchmark
from internflow.evaluation import lighteval_tasks

__all__ = ["EVALUATOR_FILE", "EvaluatorChangedError", "evaluator_fingerprint", "pin_evaluator"]

EVALUATOR_FILE = "evaluator.json"


class EvaluatorChangedError(ValueError):
    """The benchmark's test set or scoring code is not the one the campaign was started with."""


def evaluator_fingerprint(benchmark: Benchmark) -> str:
    digest = hashlib.sha256(benchmark.fingerprint().encode())
    digest.update(inspect.getsource(lighteval_tasks).encode())
    digest.update(version("lighteval").encode())
    return digest.hexdigest()[:16]


def check_evaluator(benchmark: Benchmark, pinned: str) -> None:
    current = evaluator_fingerprint(benchmark)
    if pinned and pinned != current:
        raise EvaluatorChangedError(
            f"evaluator: benchmark {benchmark.name!r} now fingerprints as {current}, but this campaign fixed it at "
            f"{pinned}: its test set or scoring code changed since, so its scores would not be comparable. Start "
            "the changed evaluator in a new workspace."
        )


def pin_evaluator(workspace_root: Path, benchmark: Benchmark) -> str:
    """The campaign's evaluator fingerprint, recorded in the workspace on first use and checked after."""
    path = workspace_root / EVALUATOR_FILE
    pinned: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    if benchmark.name in pinned:
        try:
            check_evaluator(benchmark, pinned[benchmark.name])
        except EvaluatorChangedError as error:
            raise EvaluatorChangedError(f"{path}: {error}") from None
    else:
        pinned[benchmark.name] = evaluator_fingerprint(benchmark)
        path.write_text(json.dumps(pinned, indent=2, sort_keys=True) + "\n")
    return pinned[benchmark.name]
