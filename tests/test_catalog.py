"""The local dataset catalog: cards, rows, corrupt files named by path and line, custom roots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from internflow.catalog import (
    CorruptDatasetError,
    UnknownDatasetError,
    catalog_root,
    get_entry,
    list_catalog,
    read_rows,
    validate_catalog,
)


def _write_dataset(root: Path, name: str, benchmark: str, lines: list[str]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(
        f"---\nbenchmark: {benchmark}\nformat: question-answer\nrows: {len(lines)}\n---\n# {name}\n\nToy rows.\n",
        encoding="utf-8",
    )
    (folder / "data.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return folder


def test_bundled_catalog_lists_each_dataset_with_the_benchmark_from_its_card(monkeypatch) -> None:
    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)
    entries = list_catalog()
    assert {name: entry.benchmark for name, entry in entries.items()} == {
        "arithmetic-contaminated": "arithmetic",
        "arithmetic-direct": "arithmetic",
        "arithmetic-noisy": "arithmetic",
        "arithmetic-preference": "arithmetic",
        "arithmetic-prompts": "arithmetic",
        "arithmetic-worked": "arithmetic",
        "family-mc-direct": "family-mc",
    }
    direct = entries["arithmetic-direct"]
    assert direct.format == "question-answer" and direct.rows == 1000
    assert direct.description == "Two-term addition problems with the bare numeric answer."
    assert direct.data_file.is_file()


def test_bundled_card_row_counts_match_the_data_files(monkeypatch) -> None:
    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)
    for entry in list_catalog().values():
        rows, _ = read_rows(entry.data_file)
        assert len(rows) == entry.rows, entry.name


def test_read_rows_returns_rows_and_the_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "1 + 1 =", "answer": "2"}\n\n{"question": "2 + 2 =", "answer": "4"}\n')
    rows, sha256 = read_rows(path)
    assert rows == [{"question": "1 + 1 =", "answer": "2"}, {"question": "2 + 2 =", "answer": "4"}]
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_rows_names_the_file_and_line_of_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "1 + 1 =", "answer": "2"}\n{"question": "2 + 2 =", "answer": \n')
    with pytest.raises(CorruptDatasetError, match="invalid JSON") as caught:
        read_rows(path)
    assert f"{path}:2" in str(caught.value)


def test_read_rows_refuses_a_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "1 + 1 =", "answer": "2"}\n\n["1 + 1 =", "2"]\n')
    with pytest.raises(CorruptDatasetError, match="expected a JSON object, got list") as caught:
        read_rows(path)
    assert f"{path}:3" in str(caught.value)  # blank lines still count toward the line number


def test_unknown_dataset_lists_the_known_ones(monkeypatch) -> None:
    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)
    with pytest.raises(UnknownDatasetError, match="nope") as caught:
        get_entry("nope")
    for name in ("arithmetic-direct", "arithmetic-worked", "family-mc-direct"):
        assert name in str(caught.value)


def test_validate_catalog_stops_on_a_corrupt_data_file(tmp_path: Path) -> None:
    _write_dataset(tmp_path, "good", "arithmetic", [json.dumps({"question": "1 + 1 =", "answer": "2"})])
    bad = _write_dataset(tmp_path, "bad", "arithmetic", [json.dumps({"question": "q", "answer": "a"}), "{oops"])
    with pytest.raises(CorruptDatasetError) as caught:
        validate_catalog("arithmetic", root=tmp_path)
    assert f"{bad / 'data.jsonl'}:2" in str(caught.value)


def test_validate_catalog_checks_only_the_campaign_benchmark(tmp_path: Path) -> None:
    _write_dataset(tmp_path, "good", "arithmetic", [json.dumps({"question": "1 + 1 =", "answer": "2"})])
    _write_dataset(tmp_path, "bad", "family-mc", ["{oops"])
    assert [entry.name for entry in validate_catalog("arithmetic", root=tmp_path)] == ["good"]


def test_list_catalog_skips_folders_without_a_card_or_data(tmp_path: Path) -> None:
    _write_dataset(tmp_path, "good", "arithmetic", [json.dumps({"question": "1 + 1 =", "answer": "2"})])
    (tmp_path / "no-card").mkdir()
    (tmp_path / "no-card" / "data.jsonl").write_text("{}\n")
    assert list(list_catalog(tmp_path)) == ["good"]


def test_internflow_catalog_env_points_at_another_catalog(tmp_path: Path, monkeypatch) -> None:
    _write_dataset(tmp_path, "mine", "arithmetic", [json.dumps({"question": "1 + 1 =", "answer": "2"})])
    monkeypatch.setenv("INTERNFLOW_CATALOG", str(tmp_path))
    assert catalog_root() == tmp_path
    assert list(list_catalog()) == ["mine"]
    assert get_entry("mine").path == tmp_path / "mine"
    with pytest.raises(UnknownDatasetError, match="arithmetic-direct"):
        get_entry("arithmetic-direct")  # the bundled catalog is replaced, not merged


def test_internflow_catalog_env_naming_a_missing_folder_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INTERNFLOW_CATALOG", str(tmp_path / "missing"))
    with pytest.raises(UnknownDatasetError, match="INTERNFLOW_CATALOG"):
        list_catalog()
