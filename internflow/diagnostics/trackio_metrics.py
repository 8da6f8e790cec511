"""Read a run's logged metric curves back from a trackio folder, through trackio's own storage API.

trackio fixes its folder at import (from TRACKIO_DIR), so the read happens in a short child
process started with that folder, the way the training child writes it; this process's trackio
(if any) stays pointed where it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from internflow.child_env import child_env
from internflow.diagnostics.evidence import Curve

__all__ = ["read_run_metrics"]

_REPO_ROOT = Path(__file__).resolve().parents[2]
_TIMEOUT_S = 120


def read_run_metrics(trackio_dir: str | Path, project: str, run: str) -> dict[str, Curve]:
    """metric name (e.g. 'train/loss', 'train/reward_std') → (step, value) pairs in step order.

    An absent folder, project or run reads as no metrics.
    """
    if not Path(trackio_dir).is_dir():
        return {}
    env = child_env({"TRACKIO_DIR": str(trackio_dir)})  # it reads a local db: no credentials
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "internflow.diagnostics.trackio_metrics", project, run]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"trackio: reading run {run!r} of project {project!r} in {trackio_dir} failed:\n{done.stderr[-2000:]}"
        )
    curves = json.loads(done.stdout)
    return {name: tuple((int(s), float(v)) for s, v in points) for name, points in curves.items()}


def _dump(project: str, run: str) -> dict[str, list[tuple[int, float]]]:
    from trackio.sqlite_storage import SQLiteStorage

    curves: dict[str, list[tuple[int, float]]] = {}
    for entry in SQLiteStorage.get_logs(project, run):
        step = entry.get("step")
        if not isinstance(step, int):
            continue
        for name, value in entry.items():
            if name != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                curves.setdefault(name, []).append((step, float(value)))
    return {name: sorted(points) for name, points in curves.items()}


if __name__ == "__main__":
    # json writes NaN/Infinity literals, which json.loads reads back: a NaN loss stays evidence.
    print(json.dumps(_dump(sys.argv[1], sys.argv[2]), allow_nan=True))
