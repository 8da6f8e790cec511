"""The default backend: `python -m internflow.training` in a child process on this machine.

The child gets the workspace's trackio folder through its environment (trackio fixes its folder
at import), and a failure surfaces with the exit code, the child's typed `failure.json` when it
wrote one, and the last lines it printed.  A request that already finished (its `result.json` and
model are there) is not trained again: its result comes back without a child.  The child's
environment carries no credentials, except `HF_TOKEN` when its starting model is a Hub id.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from internflow.child_env import HUB_TOKEN_NAMES, child_env, needs_hub_token
from internflow.execution.errors import TrainingFailed
from internflow.schemas import TrainFailure, TrainRequest, TrainResult
from internflow.training import FAILURE_FILE, REQUEST_FILE, RESULT_FILE, finished_result

__all__ = ["LocalProcess"]


def _read_failure(path: Path) -> TrainFailure | None:
    """The child's failure.json; None when absent or unreadable (a full disk can leave it empty)."""
    try:
        return TrainFailure.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


_TAIL_LINES = 40
# What the child prints on a full disk (the one word left when even failure.json cannot be written).
_DISK_FULL_LINE = "internflow: out of disk space: "
_LOG_EVERY_S = 10.0
_REPO_ROOT = Path(__file__).resolve().parents[2]


class LocalProcess:
    def run(self, request: TrainRequest, log: Callable[[str], None]) -> TrainResult:
        done = finished_result(request)
        if done is not None:  # re-running a finished run would train a step more and replace its model
            log(f"{request.run_name}: already trained ({done.steps} steps, model {done.model_path}); not retrained")
            return done
        checkpoint_dir = Path(request.checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        request_file = checkpoint_dir / REQUEST_FILE
        request_file.write_text(request.model_dump_json(indent=2))
        (checkpoint_dir / RESULT_FILE).unlink(missing_ok=True)
        (checkpoint_dir / FAILURE_FILE).unlink(missing_ok=True)

        keep = HUB_TOKEN_NAMES if needs_hub_token(request.init_model) else ()
        env = child_env({"TRACKIO_DIR": request.trackio_dir, "TQDM_DISABLE": "1"}, keep=keep)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        last_logged = 0.0
        command = [sys.executable, "-m", "internflow.training", str(request_file)]
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                line = line.rstrip()
                tail.append(line)
                # Trainer metric dicts at most every few seconds (trackio has them all), errors always.
                is_metrics = line.startswith("{")
                if (
                    ("Error" in line and not is_metrics)
                    or "train_runtime" in line
                    or "out of memory" in line
                    or (is_metrics and time.monotonic() - last_logged > _LOG_EVERY_S)
                ):
                    log(line)
                    last_logged = time.monotonic()
        if child.returncode != 0 or not (checkpoint_dir / RESULT_FILE).is_file():
            failure_file = checkpoint_dir / FAILURE_FILE
            failure = _read_failure(failure_file)
            if failure is None and (full := [line for line in tail if line.startswith(_DISK_FULL_LINE)]):
                failure = TrainFailure(kind="disk_full", message=full[-1].removeprefix(_DISK_FULL_LINE))
            if failure is not None and failure.kind == "disk_full":  # one line says it all; no traceback to read
                raise TrainingFailed(f"training ran out of disk space: {failure.message}", failure)
            reason = f" ({failure.kind}: {failure.message})" if failure else ""
            raise TrainingFailed(
                f"training child exited with code {child.returncode}{reason}; last output:\n" + "\n".join(tail), failure
            )
        return TrainResult.model_validate_json((checkpoint_dir / RESULT_FILE).read_text())
