"""The files a training run leaves beside its checkpoints, and reading a finished run back.

`request.json` (the TrainRequest), then `result.json` (a TrainResult) or `failure.json` (a
TrainFailure); the result also goes to stdout on one line after `RESULT_MARKER`.  Importing this
module imports neither torch nor TRL: the execution backends read these files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from internflow.schemas import TrainRequest, TrainResult

__all__ = ["FAILURE_FILE", "REQUEST_FILE", "RESULT_FILE", "RESULT_MARKER", "finished_result", "is_complete_model"]

RESULT_FILE = "result.json"
FAILURE_FILE = "failure.json"
REQUEST_FILE = "request.json"
# The result also goes to stdout on one line, for backends that only see the logs (HF Jobs).
RESULT_MARKER = "internflow-result: "


def is_complete_model(folder: str | Path) -> bool:
    """A saved model folder: its config and weights are there (saving renames a finished staging
    folder into place, so a kill mid-save leaves no folder rather than half of one)."""
    path = Path(folder)
    return (path / "config.json").is_file() and any(
        p.suffix in (".safetensors", ".bin") for p in path.iterdir() if p.is_file()
    )


def finished_result(request: TrainRequest) -> TrainResult | None:
    """The result of an earlier run of this same request that finished, or None.

    Finished means: beside the checkpoints, `request.json` is this request and `result.json`
    names a complete model folder.  Anything else (another request, no result, a model that a
    kill or the retention policy removed) is not finished, and the run trains (or resumes).
    """
    from internflow.schemas import TrainRequest, TrainResult

    folder = Path(request.checkpoint_dir)
    try:
        earlier = TrainRequest.model_validate_json((folder / REQUEST_FILE).read_text(encoding="utf-8"))
        result = TrainResult.model_validate_json((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if earlier != request or not Path(result.model_path).is_dir() or not is_complete_model(result.model_path):
        return None
    return result
