"""The local dataset catalog: a folder of datasets, each with a dataset card (README.md with YAML
front matter) and its rows in `data.jsonl`.  Works offline; Hub datasets plug in later through
the same `CatalogEntry` shape.  The bundled catalog is the default; `INTERNFLOW_CATALOG` points
at a folder of your own laid out the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

__all__ = [
    "CATALOG_DIR",
    "CatalogEntry",
    "CorruptDatasetError",
    "UnknownDatasetError",
    "catalog_root",
    "get_entry",
    "list_catalog",
    "read_rows",
    "validate_catalog",
]

CATALOG_DIR = Path(__file__).parent


def catalog_root() -> Path:
    return Path(os.environ.get("INTERNFLOW_CATALOG") or CATALOG_DIR)


class UnknownDatasetError(ValueError):
    pass


class CorruptDatasetError(ValueError):
    """A dataset file that cannot be parsed; the message names the file and line."""


class CatalogEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    path: Path
    benchmark: str
    format: str
    rows: int
    description: str

    @property
    def data_file(self) -> Path:
        return self.path / "data.jsonl"


def _read_card(folder: Path) -> CatalogEntry:
    card = (folder / "README.md").read_text(encoding="utf-8")
    _, front, body = card.split("---", 2)
    meta = yaml.safe_load(front)
    description = "\n".join(line for line in body.strip().splitlines() if not line.startswith("#")).strip()
    return CatalogEntry(
        name=folder.name,
        path=folder,
        description=description,
        **{key: meta[key] for key in ("benchmark", "format", "rows")},
    )


def list_catalog(root: Path | None = None) -> dict[str, CatalogEntry]:
    """Every dataset folder under `root` (default: `catalog_root()`) that has a card and a data file."""
    root = root or catalog_root()
    if not root.is_dir():
        raise UnknownDatasetError(f"catalog: {root} is not a folder (INTERNFLOW_CATALOG?)")
    return {
        folder.name: _read_card(folder)
        for folder in sorted(root.iterdir())
        if (folder / "README.md").is_file() and (folder / "data.jsonl").is_file()
    }


def get_entry(name: str, root: Path | None = None) -> CatalogEntry:
    entries = list_catalog(root)
    if name not in entries:
        raise UnknownDatasetError(f"datasets: unknown dataset {name!r}; the catalog has: {', '.join(entries)}")
    return entries[name]


def read_rows(path: Path) -> tuple[list[dict], str]:
    """Parse a JSONL file; return its rows and the file's sha256.  Bad lines are named, not skipped."""
    raw = path.read_bytes()
    rows = []
    for line_no, line in enumerate(raw.decode("utf-8", errors="strict").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise CorruptDatasetError(f"{path}:{line_no}: invalid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise CorruptDatasetError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows, hashlib.sha256(raw).hexdigest()


def validate_catalog(benchmark: str, root: Path | None = None) -> list[CatalogEntry]:
    """Parse every dataset meant for `benchmark` up front, so a corrupt file stops a campaign
    before it spends anything, with the file and line named."""
    entries = [entry for entry in list_catalog(root).values() if entry.benchmark == benchmark]
    for entry in entries:
        read_rows(entry.data_file)
    return entries
