"""Training data from a (local) Hub for a real target: discovery, mapping inference, pinning, the
decontamination gate, gated datasets, injected 429/503s, the discovery cache, offline fallback and
the refusal of a target with nothing to train on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internflow.benchmarks import get_benchmark
from internflow.data.selection import NoTrainingDataError, select_training_data
from internflow.data.vetting import DataPaths, prepare_training_data, resolve_sources
from internflow.schemas import CampaignConfig, ColumnMapping, DataPlan
from tests.hub_data import TARGET, gsm_items, hub_repos
from tests.local_hub import HubRepo, LocalHub

OWN = "hub:openai/gsm8k:main@train"
STYLE = "hub:example/gsm8k-style-train:default@train"
MATH = "hub:example/math-word-problems:default@train"
CHAT = "hub:example/gsm8k-sharegpt:default@train"
CONTAMINATED = "hub:example/gsm8k-contaminated:default@train"


@pytest.fixture
def gsm_hub(local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> LocalHub:
    for switch in ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE", "INTERNFLOW_CATALOG"):
        monkeypatch.delenv(switch, raising=False)
    for repo in hub_repos():
        local_hub.add(repo)
    return local_hub


def _paths(tmp_path: Path) -> DataPaths:
    return DataPaths(tmp_path / "hub", tmp_path / "hf-cache", row_budget=1000)


def _select(tmp_path: Path, benchmark: str = "gsm8k", **config: object) -> DataPlan:
    return select_training_data(
        get_benchmark(benchmark), CampaignConfig(benchmark=benchmark, **config), _paths(tmp_path), tmp_path, "sft"
    )


def test_gsm8k_discovery_finds_maps_pins_and_vets_hub_datasets(gsm_hub: LocalHub, tmp_path: Path) -> None:
    plan = _select(tmp_path, hub_datasets=6)

    sources = {s.id: s for s in plan.discovery.sources}
    assert set(plan.by_method["sft"]) == {OWN, STYLE, MATH, CHAT}
    assert plan.default_datasets == plan.by_method["sft"][:1]  # the best vetted one for the recipe's method
    # Layouts inferred from columns and first rows.
    assert sources[OWN].mapping == ColumnMapping(prompt="question", completion="answer", answer="answer")
    assert sources[MATH].mapping == ColumnMapping(prompt="problem", completion="solution")
    assert sources[CHAT].mapping == ColumnMapping(messages="conversations")
    unmappable = sources["hub:example/gsm8k-no-layout:default@train"]
    assert unmappable.status == "unmappable" and "give a column mapping" in unmappable.note
    # Pinned to the commit that was read; never the target's test split.
    assert sources[OWN].revision == gsm_hub.repos[TARGET].head and sources[OWN].split == "train"
    assert all(s.split != "test" for s in plan.sources)
    # The gate blocks the dataset built around test items; the gated one is skipped with a message.
    contaminated = plan.checks[CONTAMINATED]["sft"]
    assert contaminated.blocked and contaminated.contamination_ratio >= 0.5 and CONTAMINATED not in plan.datasets
    gated = sources["hub:example/gsm8k-gated@train"]
    assert gated.status == "gated" and "HF_TOKEN" in gated.note
    assert any("example/gsm8k-gated" in note and "token" in note for note in plan.discovery.notes)
    # Ranked with the evidence for each.
    offered = [s for s in plan.discovery.sources if s.id in plan.datasets]
    assert [s.score for s in offered] == sorted((s.score for s in offered), reverse=True)
    assert "vocabulary overlap" in sources[MATH].why and "licence apache-2.0" in sources[MATH].why


def test_worked_answers_become_the_reference_the_target_judges(gsm_hub: LocalHub, tmp_path: Path) -> None:
    plan = _select(tmp_path, hub_datasets=6)
    benchmark = get_benchmark("gsm8k")
    finals = {i["question"]: i["final"] for i in gsm_items(2002, 2400)}

    for dataset in (OWN, MATH, CHAT):
        prepared = prepare_training_data(
            resolve_sources((dataset,), plan.sources), benchmark, _paths(tmp_path), tmp_path,
            method="grpo", max_train_samples=40, seed=0,
        )  # fmt: skip
        rows = [json.loads(line) for line in Path(prepared.path).read_text().splitlines()]
        assert all(float(row["answer"]) == float(finals[row["prompt"][-1]["content"]]) for row in rows), dataset


def test_a_pinned_revision_still_reads_the_rows_it_was_vetted_on(gsm_hub: LocalHub, tmp_path: Path) -> None:
    plan = _select(tmp_path, hub_datasets=6)
    [style] = resolve_sources((STYLE,), plan.sources)
    gsm_hub.repos["example/gsm8k-style-train"].push({"default": {"train": [{"question": "new?", "answer": "1"}] * 5}})

    fresh = DataPaths(tmp_path / "other-rows", tmp_path / "other-cache", row_budget=1000)  # no local copy
    prepared = prepare_training_data([style], get_benchmark("gsm8k"), fresh, tmp_path, method="sft",
                                     max_train_samples=1000, seed=0)  # fmt: skip

    assert prepared.rows > 200 and prepared.checks[0].rows_in == 300
    downloads = [r.path for r in gsm_hub.requests_of("resolve") if "gsm8k-style-train" in r.path]
    assert downloads and all(f"/resolve/{style.revision}/" in path for path in downloads)


def test_every_endpoint_failing_once_with_429_or_503_still_gives_the_same_data(
    gsm_hub: LocalHub, tmp_path: Path
) -> None:
    gsm_hub.fail_once_per_endpoint((429, 503))

    plan = _select(tmp_path, hub_datasets=6)

    assert set(plan.by_method["sft"]) == {OWN, STYLE, MATH, CHAT}
    failed_kinds = {"search", "is-valid", "splits", "info", "first-rows", "repo-info", "resolve"}
    for kind in failed_kinds:
        assert len(gsm_hub.requests_of(kind)) >= 2, kind


def test_discovery_is_cached_in_the_workspace(gsm_hub: LocalHub, tmp_path: Path) -> None:
    first = _select(tmp_path)
    searches = len(gsm_hub.requests_of("search"))

    again = _select(tmp_path)

    assert again.discovery.status == "cached" and len(gsm_hub.requests_of("search")) == searches
    assert again.by_method == first.by_method


def test_a_dataset_named_by_the_user_is_read_through_the_mapping_they_give(gsm_hub: LocalHub, tmp_path: Path) -> None:
    rows = [{"instruction_text": i["question"], "worked": i["answer"]} for i in gsm_items(77, 60)]
    gsm_hub.add(HubRepo("someone/odd-columns", {"default": {"train": rows}}))
    named = "hub:someone/odd-columns"
    mapping = ColumnMapping(prompt="instruction_text", completion="worked")

    plan = _select(tmp_path, datasets=(named,), column_mappings={named: mapping})

    [source] = [s for s in plan.sources if s.repo == "someone/odd-columns"]
    assert source.mapping == mapping and source.id in plan.by_method["sft"]
    assert "named by the user" in source.found_by


def test_a_gated_dataset_named_by_the_user_is_skipped_with_a_message(gsm_hub: LocalHub, tmp_path: Path) -> None:
    plan = _select(tmp_path, datasets=("hub:example/gsm8k-gated",))
    assert all(s.repo != "example/gsm8k-gated" for s in plan.sources)
    assert any("example/gsm8k-gated" in note and "HF_TOKEN" in note for note in plan.discovery.notes)


def _task_spec(folder: Path, train: bool) -> Path:
    items = gsm_items(5, 90)
    for name, part in (("test", items[:40]), ("train", items[40:])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(i) + "\n" for i in part))
    spec = folder / "word-problems.yaml"
    spec.write_text(
        "name: word-problems\ndata: test.jsonl\nprompt_template: '{question}'\nanswer_field: final\n"
        "extraction: number\nmetric: numeric\n" + ("train_data: train.jsonl\n" if train else "")
    )
    return spec


def test_offline_discovery_falls_back_to_the_task_data_and_says_so(
    local_hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    spec = _task_spec(tmp_path, train=True)

    plan = _select(tmp_path, benchmark=str(spec))

    assert plan.datasets == ("task:word-problems:train",) and plan.default_datasets == plan.datasets
    assert plan.discovery.status == "offline" and "Hub not searched" in plan.discovery.notes[0]
    assert not local_hub.requests


def test_a_task_spec_without_train_data_runs_discovery(gsm_hub: LocalHub, tmp_path: Path) -> None:
    spec = _task_spec(tmp_path, train=False)
    spec.write_text(spec.read_text() + "description: grade school math word problems\n")

    plan = _select(tmp_path, benchmark=str(spec))

    assert plan.discovery.queries[:2] == ("word-problems", "grade") and "math" in plan.discovery.queries
    assert MATH in plan.datasets  # found by the 'math' query


def test_a_target_with_no_usable_training_data_is_refused_naming_what_was_searched(
    local_hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTERNFLOW_OFFLINE", raising=False)
    spec = _task_spec(tmp_path, train=False)

    with pytest.raises(NoTrainingDataError) as refused:
        _select(tmp_path, benchmark=str(spec))

    message = str(refused.value)
    assert message.startswith("datasets: no usable training data for 'word-problems'")
    assert "queries ['word-problems', 'word']" in message and "train_data:" in message
    assert "--datasets hub:owner/name" in message
