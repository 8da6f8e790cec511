"""One folder per campaign holds everything it writes: data, models, checkpoints, the trackio db,
eval samples, Prefect results and reports.  Paths are derived here and nowhere else.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["Workspace", "WorkspaceError"]


class WorkspaceError(ValueError):
    pass


class Workspace(BaseModel):
    model_config = ConfigDict(frozen=True)

    root: Path

    @classmethod
    def open(cls, root: str | Path) -> Workspace:
        """Create the folder if needed and prove it is writable before any work starts."""
        path = Path(root).expanduser().resolve()
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-probe-{uuid.uuid4().hex}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise WorkspaceError(f"workspace: {path} is not a writable folder ({error.strerror or error})") from None
        return cls(root=path)

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def data_dir(self) -> Path:
        return self._dir("data")

    @property
    def models_dir(self) -> Path:
        return self._dir("models")

    @property
    def checkpoints_dir(self) -> Path:
        return self._dir("checkpoints")

    @property
    def samples_dir(self) -> Path:
        return self._dir("eval-samples")

    @property
    def logs_dir(self) -> Path:
        """Server logs (vLLM's, one file per server start)."""
        return self._dir("logs")

    @property
    def literature_dir(self) -> Path:
        return self._dir("literature")

    @property
    def trackio_dir(self) -> Path:
        return self._dir("trackio")

    @property
    def results_dir(self) -> Path:
        """Prefect's persisted task results and cache records (flows pass it as `result_storage`)."""
        return self._dir("prefect-results")

    @property
    def prefect_home(self) -> Path:
        """PREFECT_HOME for the ephemeral API (its SQLite run history) when no server is configured."""
        return self._dir("prefect")

    @property
    def hf_cache_dir(self) -> Path:
        return self._dir("hf-cache")

    @property
    def reports_dir(self) -> Path:
        """Plots and markdown written for people (learning curves); report.json stays at the root."""
        return self._dir("reports")

    @property
    def iterations_dir(self) -> Path:
        """Each iteration run's result as JSON, named by flow run id (read back from work-pool runs)."""
        return self._dir("iterations")

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    def process_env(self) -> dict[str, str]:
        """Environment that keeps library side-writes (trackio, Prefect, datasets) inside the workspace.

        Read by those libraries at import time, so it is applied before they are imported (the CLI
        does this first thing) or passed to child processes.
        """
        env = {
            "TRACKIO_DIR": str(self.trackio_dir),
            "PREFECT_LOCAL_STORAGE_PATH": str(self.results_dir),
            "HF_DATASETS_CACHE": str(self.hf_cache_dir / "datasets"),
        }
        if not os.environ.get("PREFECT_API_URL"):
            env["PREFECT_HOME"] = str(self.prefect_home)
            # A new ephemeral API migrates its SQLite db first: on 2 busy cores that can pass
            # Prefect's 20 s default start-up wait.
            env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        return {
            key: os.environ.get(key, value) if key.startswith("PREFECT_SERVER") else value for key, value in env.items()
        }
