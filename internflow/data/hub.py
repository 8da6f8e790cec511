"""Hub datasets, pinned: resolve a repository's commit, then load one split at that commit through
`datasets` (its own download code, so HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE apply as they do
for any `load_dataset`), capped by a row budget, and keep the rows as JSONL in the workspace so a
re-run (or an offline one) reads them again without asking the Hub.

Dataset ids: `hub:owner/name[:config][@split]` (config: the first the Hub lists; split: `train`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub.hf_api import DatasetInfo

from internflow.http import ServiceError, ServiceSession, get_json, retry_transient, session_for
from internflow.schemas import HUB_ID

__all__ = [
    "GatedDatasetError",
    "HubDatasetError",
    "hub_id",
    "load_hub_rows",
    "parse_hub_id",
    "resolve_revision",
]


class HubDatasetError(ValueError):
    """A Hub dataset that cannot be read; the message names it and says why."""


class GatedDatasetError(HubDatasetError):
    """The Hub answered 401/403: the dataset is gated or private and needs a token with access."""


def parse_hub_id(text: str) -> tuple[str, str | None, str]:
    """'hub:owner/name[:config][@split]' → (repo, config or None, split); ValueError otherwise."""
    found = HUB_ID.match(text.strip())
    if not found:
        raise ValueError(f"expected hub:owner/name[:config][@split], got {text!r}")
    return found["repo"], found["config"], found["split"] or "train"


def hub_id(repo: str, config: str | None, split: str) -> str:
    return f"hub:{repo}" + (f":{config}" if config else "") + f"@{split}"


def resolve_revision(repo: str, revision: str | None = None, session: ServiceSession | None = None) -> DatasetInfo:
    """The repository's info at `revision` (default: its head), whose `sha` pins every later read.
    `GatedDatasetError` on 401/403, `HubDatasetError` when it does not exist."""
    path = f"/api/datasets/{repo}" + (f"/revision/{revision}" if revision else "")
    try:
        payload = get_json(session or session_for("hf-hub"), path)
    except ServiceError as error:
        raise _named(repo, error) from None
    return DatasetInfo(**payload)


def _named(repo: str, error: ServiceError) -> HubDatasetError:
    if error.status in (401, 403):
        return GatedDatasetError(
            f"hub:{repo} is gated or private (HTTP {error.status}): set HF_TOKEN to a token that has been "
            "granted access on the Hub"
        )
    if error.status == 404:
        return HubDatasetError(f"hub:{repo}: no such dataset (or revision) on the Hub")
    return HubDatasetError(f"hub:{repo}: {error.cause}")


def _status_in_chain(error: BaseException) -> int | None:
    seen: BaseException | None = error
    while seen is not None:
        status = getattr(getattr(seen, "response", None), "status_code", None)
        if status is not None:
            return int(status)
        seen = seen.__cause__ or seen.__context__
    return None


def load_hub_rows(
    repo: str, config: str | None, split: str, revision: str, rows_dir: Path, cache_dir: Path, max_rows: int
) -> tuple[list[dict[str, Any]], Path]:
    """The first `max_rows` rows of `split` at commit `revision`, and the workspace JSONL they are
    kept in (read back on later calls, online or not).  Downloads with `datasets.load_dataset`
    (into `cache_dir`), retrying transient failures; `GatedDatasetError` / `HubDatasetError`."""
    safe = lambda text: re.sub(r"[^\w.-]+", "-", text)  # noqa: E731
    path = rows_dir / safe(repo) / f"{safe(config or 'default')}--{safe(split)}--{revision[:12]}--{max_rows}.jsonl"
    if path.is_file():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()], path

    def download() -> list[dict[str, Any]]:
        import datasets  # heavy, and only a real download needs it

        subset = datasets.load_dataset(
            repo, config, split=f"{split}[:{max_rows}]", revision=revision, cache_dir=str(cache_dir)
        )
        return [dict(row) for row in subset]

    try:
        rows = retry_transient(download, "hf-hub", f"download of hub:{repo}")
    except (ValueError, RuntimeError, OSError) as error:  # datasets and huggingface_hub errors
        status = _status_in_chain(error)
        if status in (401, 403):
            raise _named(repo, ServiceError("hf-hub", repo, "gated", status)) from None
        raise HubDatasetError(f"hub:{repo} ({config or 'default'}, {split}) could not be loaded: {error}") from error
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(f".partial-{os.getpid()}")
    # default=str: rare non-JSON cells (dates, decimals) are kept as text rather than failing the load.
    staging.write_text("".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows), "utf-8")
    staging.replace(path)  # atomic: an interrupted write never passes for the cached rows
    return rows, path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
