"""Finding training data: search a catalog and inspect a candidate before downloading anything.
The Hugging Face Hub and a local folder of datasets answer through the same interface, as
`DataSource` values (internflow.schemas) that the campaign ranks, vets and offers its planner.

On the Hub, search is `/api/datasets` (what `HfApi.list_datasets` calls, parsed into its
`DatasetInfo`), and inspection is the datasets-server API: `/is-valid` (can it be previewed at
all), `/splits`, `/info` (features, licence, rows per split; `/size` when /info has no answer)
and `/first-rows`, so the layout, row count and a sample are known before a byte of the data is
downloaded.  Both go through `internflow.http` (timeouts, retries, rate limit, explicit offline
mode).  Downloading is `internflow.data.hub.load_hub_rows` (pinned, through `datasets`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from huggingface_hub.hf_api import DatasetInfo

from internflow.catalog import CorruptDatasetError, get_entry, list_catalog, read_rows
from internflow.data.formats import infer_mapping, usable_for
from internflow.data.hub import hub_id
from internflow.http import ServiceError, ServiceSession, get_json, session_for
from internflow.schemas import ColumnMapping, DataSource

__all__ = ["CATALOGS", "Catalog", "HubCatalog", "Inspection", "LocalCatalog", "get_catalog", "methods_for"]

METHODS = ("sft", "dpo", "grpo")


def methods_for(mapping: ColumnMapping | None) -> tuple[str, ...]:
    """The training methods rows in this layout can feed (GRPO also needs a reference answer:
    checked per row when the data is prepared)."""
    return () if mapping is None else tuple(m for m in METHODS if usable_for(mapping.format(), m))


@dataclass(frozen=True)
class Inspection:
    """A candidate as inspected: its source record and the first rows seen (evidence, not data)."""

    source: DataSource
    sample: tuple[dict[str, Any], ...] = field(default=())


def _mapped(source: DataSource, columns: tuple[str, ...], sample: list[dict[str, Any]]) -> DataSource:
    """The source with its column mapping inferred from columns and sample, or marked unmappable."""
    try:
        mapping = infer_mapping(columns, sample)
    except CorruptDatasetError as error:
        return source.model_copy(update={"status": "unmappable", "note": str(error)})
    return source.model_copy(update={"mapping": mapping, "format": mapping.format(), "methods": methods_for(mapping)})


class Catalog(Protocol):
    def search(self, query: str, limit: int = 10) -> list[DataSource]: ...
    def inspect(self, name: str, split: str = "train") -> Inspection: ...


class LocalCatalog:
    """A folder of datasets with cards (`internflow.catalog`): works offline."""

    def search(self, query: str, limit: int = 10) -> list[DataSource]:
        words = query.lower().split()
        entries = list_catalog().values()
        hits = [e for e in entries if all(w in f"{e.name} {e.benchmark} {e.description}".lower() for w in words)]
        return [
            DataSource(id=e.name, kind="local", path=str(e.data_file), rows=e.rows, description=e.description)
            for e in hits[:limit]
        ]

    def inspect(self, name: str, split: str = "train") -> Inspection:
        if split != "train":
            raise ValueError(f"split: local catalog datasets have one split, 'train'; got {split!r}")
        entry = get_entry(name)
        rows, sha256 = read_rows(entry.data_file)
        source = DataSource(
            id=name,
            kind="local",
            path=str(entry.data_file),
            revision=sha256,
            rows=len(rows),
            columns=tuple(rows[0]) if rows else (),
            description=entry.description,
            found_by=(f"local catalog (benchmark: {entry.benchmark})",),
        )
        return Inspection(_mapped(source, source.columns, rows[:3]), tuple(rows[:3]))


class HubCatalog:
    """Datasets on the Hugging Face Hub, inspected through datasets-server before any download."""

    def __init__(self, hub: ServiceSession | None = None, viewer: ServiceSession | None = None) -> None:
        self.hub = hub or session_for("hf-hub")
        self.viewer = viewer or session_for("datasets-server")

    def search(self, query: str, limit: int = 10) -> list[DataSource]:
        payload = get_json(self.hub, "/api/datasets", {"search": query, "limit": limit, "sort": "downloads"})
        if not isinstance(payload, list):
            raise ServiceError("hf-hub", "/api/datasets", f"expected a list, got {type(payload).__name__}")
        found = []
        for info in (DatasetInfo(**entry) for entry in payload[:limit]):
            license_ = next((t.removeprefix("license:") for t in info.tags or [] if t.startswith("license:")), None)
            gated = bool(info.gated)
            found.append(
                DataSource(
                    id=hub_id(info.id, None, "train"),
                    kind="hub",
                    repo=info.id,
                    revision=info.sha,
                    license=license_,
                    downloads=info.downloads,
                    status="gated" if gated else ("invalid" if info.disabled else "candidate"),
                    note=f"gated ({info.gated}): needs a token with access (HF_TOKEN)" if gated else "",
                    found_by=(f"hub search {query!r}",),
                )
            )
        return found

    def inspect(self, name: str, split: str = "train", config: str | None = None) -> Inspection:
        """`name` is the repository ('owner/name'); the config is the first the viewer lists unless
        given; the split is `split` when the config has it, else the viewer's first."""
        base = DataSource(id=hub_id(name, config, split), kind="hub", repo=name, config=config, split=split)
        valid = get_json(self.viewer, "/is-valid", {"dataset": name})
        if not valid.get("preview"):
            note = "datasets-server cannot preview it"
            return Inspection(base.model_copy(update={"status": "invalid", "note": note}))
        splits = get_json(self.viewer, "/splits", {"dataset": name}).get("splits") or []
        configs = list(dict.fromkeys(s["config"] for s in splits))
        if not configs or (config is not None and config not in configs):
            note = f"datasets-server lists no config {config!r}" if config else "datasets-server lists no splits"
            return Inspection(base.model_copy(update={"status": "invalid", "note": note}))
        config = config or configs[0]
        names = tuple(s["split"] for s in splits if s["config"] == config)
        chosen = split if split in names else names[0]
        rows, license_, description = self._rows_and_licence(name, config, chosen)
        first = get_json(self.viewer, "/first-rows", {"dataset": name, "config": config, "split": chosen})
        columns = tuple(f["name"] for f in first.get("features", []))
        sample = [r["row"] for r in first.get("rows", [])[:3]]
        others = f"; other configs: {', '.join(configs[1:])}" if len(configs) > 1 else ""
        source = base.model_copy(
            update={
                "id": hub_id(name, config, chosen),
                "config": config,
                "split": chosen,
                "rows": rows,
                "columns": columns,
                "license": license_,
                "description": description,
                "note": f"splits: {', '.join(names)}{others}",
            }
        )
        return Inspection(_mapped(source, columns, sample), tuple(sample))

    def _rows_and_licence(self, name: str, config: str, split: str) -> tuple[int | None, str | None, str]:
        """Rows of the split, the licence and description, from /info (or /size when /info fails)."""
        try:
            info = get_json(self.viewer, "/info", {"dataset": name, "config": config}).get("dataset_info") or {}
            rows = (info.get("splits") or {}).get(split, {}).get("num_examples")
            return rows, info.get("license") or None, (info.get("description") or "").strip()
        except ServiceError:
            size = get_json(self.viewer, "/size", {"dataset": name}).get("size") or {}
            rows = next(
                (s.get("num_rows") for s in size.get("splits", []) if (s["config"], s["split"]) == (config, split)),
                None,
            )
            return rows, None, ""


CATALOGS: dict[str, Callable[[], Catalog]] = {"hub": HubCatalog, "local": LocalCatalog}


def get_catalog(name: str) -> Catalog:
    try:
        return CATALOGS[name]()
    except KeyError:
        raise ValueError(f"catalog: unknown catalog {name!r}; known: {', '.join(CATALOGS)}") from None
