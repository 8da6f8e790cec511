"""Finding training data: search a catalog, inspect a candidate before downloading anything, then
load it.  The Hugging Face Hub and a local folder of datasets answer through the same interface.

On the Hub, search is `/api/datasets` (what `HfApi.list_datasets` calls, parsed into its
`DatasetInfo`), and inspection is the datasets-server API: `/is-valid` (can it be previewed at
all), `/splits`, `/size` and `/first-rows`, so the format, row count and a sample are known
before a byte of the data is downloaded.  Both go through `internflow.http` (timeouts, retries,
rate limit, explicit offline mode); only `load` downloads, through `datasets`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from huggingface_hub.hf_api import DatasetInfo
from pydantic import BaseModel, ConfigDict

from internflow.catalog import CorruptDatasetError, get_entry, list_catalog, read_rows
from internflow.data.formats import detect_format
from internflow.http import ServiceError, ServiceSession, get_json, session_for

__all__ = ["CATALOGS", "Candidate", "Catalog", "HubCatalog", "LocalCatalog", "get_catalog"]


class Candidate(BaseModel):
    """What is known about a dataset before training on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    source: str  # "hub" or "local"
    description: str = ""
    valid: bool = True  # the rows can be read (the Hub: datasets-server can preview them)
    config: str | None = None
    splits: tuple[str, ...] = ()
    rows: int | None = None  # of the inspected split
    columns: tuple[str, ...] = ()
    format: str | None = None  # detected from the columns; None when no known layout fits
    sample: tuple[dict[str, Any], ...] = ()
    note: str = ""


class Catalog(Protocol):
    def search(self, query: str, limit: int = 10) -> list[Candidate]: ...
    def inspect(self, name: str) -> Candidate: ...
    def load(self, name: str, split: str = "train") -> list[dict[str, Any]]: ...


def _format_of(columns: tuple[str, ...]) -> str | None:
    try:
        return detect_format(columns)
    except CorruptDatasetError:
        return None  # arbitrary columns: a ColumnMapping must say which is which


class LocalCatalog:
    """A folder of datasets with cards (`internflow.catalog`): works offline."""

    def search(self, query: str, limit: int = 10) -> list[Candidate]:
        words = query.lower().split()
        entries = list_catalog().values()
        hits = [e for e in entries if all(w in f"{e.name} {e.benchmark} {e.description}".lower() for w in words)]
        return [Candidate(name=e.name, source="local", description=e.description, rows=e.rows) for e in hits[:limit]]

    def inspect(self, name: str) -> Candidate:
        entry = get_entry(name)
        rows, _ = read_rows(entry.data_file)
        columns = tuple(rows[0]) if rows else ()
        return Candidate(
            name=name,
            source="local",
            description=entry.description,
            splits=("train",),
            rows=len(rows),
            columns=columns,
            format=_format_of(columns),
            sample=tuple(rows[:3]),
        )

    def load(self, name: str, split: str = "train") -> list[dict[str, Any]]:
        if split != "train":
            raise ValueError(f"split: local catalog datasets have one split, 'train'; got {split!r}")
        return read_rows(get_entry(name).data_file)[0]


class HubCatalog:
    """Datasets on the Hugging Face Hub, inspected through datasets-server before any download."""

    def __init__(self, hub: ServiceSession | None = None, viewer: ServiceSession | None = None) -> None:
        self.hub = hub or session_for("hf-hub")
        self.viewer = viewer or session_for("datasets-server")

    def search(self, query: str, limit: int = 10) -> list[Candidate]:
        payload = get_json(self.hub, "/api/datasets", {"search": query, "limit": limit, "sort": "downloads"})
        if not isinstance(payload, list):
            raise ServiceError("hf-hub", "/api/datasets", f"expected a list, got {type(payload).__name__}")
        found = []
        for info in (DatasetInfo(**entry) for entry in payload[:limit]):
            gated = f"gated ({info.gated})" if info.gated else ""
            note = ", ".join(x for x in (gated, f"{info.downloads} downloads" if info.downloads else "") if x)
            found.append(Candidate(name=info.id, source="hub", valid=not info.disabled, note=note))
        return found

    def inspect(self, name: str, split: str = "train") -> Candidate:
        valid = get_json(self.viewer, "/is-valid", {"dataset": name})
        if not valid.get("preview"):
            return Candidate(name=name, source="hub", valid=False, note="datasets-server cannot preview it")
        splits = get_json(self.viewer, "/splits", {"dataset": name}).get("splits") or []
        configs = list(dict.fromkeys(s["config"] for s in splits))
        if not configs:
            return Candidate(name=name, source="hub", valid=False, note="datasets-server lists no splits")
        config = configs[0]
        names = tuple(s["split"] for s in splits if s["config"] == config)
        chosen = split if split in names else names[0]
        size = get_json(self.viewer, "/size", {"dataset": name}).get("size") or {}
        rows = next(
            (
                s.get("num_rows")
                for s in size.get("splits", [])
                if (s.get("config"), s.get("split")) == (config, chosen)
            ),
            None,
        )
        first = get_json(self.viewer, "/first-rows", {"dataset": name, "config": config, "split": chosen})
        columns = tuple(f["name"] for f in first.get("features", []))
        others = f"; other configs: {', '.join(configs[1:])}" if len(configs) > 1 else ""
        return Candidate(
            name=name,
            source="hub",
            config=config,
            splits=names,
            rows=rows,
            columns=columns,
            format=_format_of(columns),
            sample=tuple(r["row"] for r in first.get("rows", [])[:3]),
            note=f"split {chosen!r} of config {config!r}{others}",
        )

    def load(self, name: str, split: str = "train") -> list[dict[str, Any]]:
        """Download with `datasets` (the only step that does): inspect first to pick the config."""
        import datasets  # heavy: imported only when a Hub dataset is actually loaded

        candidate = self.inspect(name, split)
        if not candidate.valid:
            raise ValueError(f"datasets: {name!r} cannot be loaded: {candidate.note}")
        return [dict(row) for row in datasets.load_dataset(name, candidate.config, split=split)]


CATALOGS: dict[str, Callable[[], Catalog]] = {"hub": HubCatalog, "local": LocalCatalog}


def get_catalog(name: str) -> Catalog:
    try:
        return CATALOGS[name]()
    except KeyError:
        raise ValueError(f"catalog: unknown catalog {name!r}; known: {', '.join(CATALOGS)}") from None
