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


_CARD_FIELDS = ("benchmark", "format", "rows")


def _read_card(folder: Path) -> CatalogEntry:
    """The dataset card's front matter; a card that lacks it, or a field, is named with what is expected."""
    card_file = folder / "README.md"
    expected = f"expected YAML front matter between '---' lines with {', '.join(_CARD_FIELDS)}"
    try:
        card = card_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CorruptDatasetError(f"{card_file}:{_line_of(card_file.read_bytes(), error.start)}: not UTF-8") from None
    parts = card.split("---", 2)
    if len(parts) < 3 or parts[0].strip():
        raise CorruptDatasetError(f"{card_file}: no front matter ({expected})")
    _, front, body = parts
    try:
        meta = yaml.safe_load(front)
    except yaml.YAMLError as error:
        line = getattr(getattr(error, "problem_mark", None), "line", None)
        where = f"{card_file}:{line + 2}" if line is not None else str(card_file)  # +1: 1-based, +1: the '---'
        raise CorruptDatasetError(f"{where}: front matter is not valid YAML ({expected})") from None
    if not isinstance(meta, dict):
        raise CorruptDatasetError(f"{card_file}: front matter is not a mapping ({expected})")
    missing = [key for key in _CARD_FIELDS if key not in meta]
    if missing:
        raise CorruptDatasetError(f"{card_file}: front matter lacks {', '.join(missing)} ({expected})")
    if not isinstance(meta["rows"], int) or isinstance(meta["rows"], bool) or meta["rows"] < 0:
        raise CorruptDatasetError(f"{card_file}: rows: expected a row count, got {meta['rows']!r}")
    description = "\n".join(line for line in body.strip().splitlines() if not line.startswith("#")).strip()
    return CatalogEntry(
        name=folder.name,
        path=folder,
        description=description,
        benchmark=str(meta["benchmark"]),
        format=str(meta["format"]),
        rows=meta["rows"],
    )


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


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
    for line_no, raw_line in enumerate(raw.split(b"\n"), start=1):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CorruptDatasetError(
                f"{path}:{line_no}: not UTF-8 (byte 0x{raw_line[error.start]:02x} at column {error.start + 1})"
            ) from None
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
