"""Dataset discovery: Hub search and datasets-server inspection against recorded responses,
and the local catalog through the same interface."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from internflow.data.discovery import HubCatalog, LocalCatalog, get_catalog
from internflow.http import OfflineError, ServiceError, session_for
from internflow.schemas import ColumnMapping
from tests.replay_server import Recording, ReplayServer

GSM8K = "openai/gsm8k"


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    for switch in ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(switch, raising=False)
    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)


@pytest.fixture
def hub() -> Iterator[ReplayServer]:
    routes = {
        "/api/datasets": Recording.from_file("hf/datasets_search_gsm8k.json"),
        "/is-valid": Recording.from_file("datasets-server/is_valid_gsm8k.json"),
        "/splits": Recording.from_file("datasets-server/splits_gsm8k.json"),
        "/size": Recording.from_file("datasets-server/size_gsm8k.json"),
        "/first-rows": Recording.from_file("datasets-server/first_rows_gsm8k.json"),
    }
    with ReplayServer(routes, hang_seconds=3) as server:
        yield server


def _catalog(url: str, retries: int = 3) -> HubCatalog:
    fast = {"base_url": url, "timeout_s": 0.5, "backoff_s": 0.0, "min_interval_s": 0.0, "retries": retries}
    return HubCatalog(session_for("hf-hub", **fast), session_for("datasets-server", **fast))


def test_hub_search_lists_candidates_and_says_which_are_gated(hub: ReplayServer) -> None:
    found = _catalog(hub.url).search("gsm8k", limit=5)
    assert [c.repo for c in found] == [GSM8K, "example-org/gsm8k-gated-mirror"]
    assert found[0].downloads == 412873 and found[0].license == "mit" and found[0].status == "candidate"
    assert found[1].status == "gated" and found[1].note.startswith("gated (manual)")
    [sent] = hub.requests
    assert sent.query == {"search": ["gsm8k"], "limit": ["5"], "sort": ["downloads"]}


def test_inspection_reads_validity_splits_size_and_first_rows_before_any_download(hub: ReplayServer) -> None:
    inspection = _catalog(hub.url).inspect(GSM8K)
    candidate = inspection.source
    assert candidate.usable and candidate.config == "main" and candidate.id == "hub:openai/gsm8k:main@train"
    assert candidate.rows == 7473 and candidate.columns == ("question", "answer")
    assert candidate.format == "prompt_completion" and candidate.methods == ("sft", "grpo")
    assert inspection.sample[0]["question"].startswith("Natalia sold clips")
    assert "splits: train, test" in candidate.note and "other configs: socratic" in candidate.note
    # /info has no recording here: its 404 falls back to /size.
    assert [r.path for r in hub.requests] == ["/is-valid", "/splits", "/info", "/size", "/first-rows"]
    assert hub.requests[-1].query == {"dataset": [GSM8K], "config": ["main"], "split": ["train"]}


def test_a_dataset_the_viewer_cannot_preview_is_marked_invalid(hub: ReplayServer) -> None:
    hub.inject("/is-valid", [Recording.from_file("datasets-server/is_valid_gated.json")])
    candidate = _catalog(hub.url).inspect("example-org/gsm8k-gated-mirror").source
    assert candidate.status == "invalid" and "cannot preview" in candidate.note and len(hub.requests) == 1


def test_inspection_survives_429_500_and_a_timeout(hub: ReplayServer) -> None:
    hub.inject("/splits", [429, 500])
    hub.inject("/first-rows", ["timeout"])
    assert _catalog(hub.url).inspect(GSM8K).source.rows == 7473
    assert len(hub.requests) == 8


def test_a_viewer_down_for_good_is_a_service_error_and_offline_mode_is_explicit(
    hub: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.inject("/is-valid", [500, 500])
    with pytest.raises(ServiceError, match="datasets-server: .*HTTP 500 after 2 tries"):
        _catalog(hub.url, retries=1).inspect(GSM8K)
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    with pytest.raises(OfflineError, match="INTERNFLOW_OFFLINE=1"):
        _catalog(hub.url).search("gsm8k")


def test_the_local_catalog_answers_the_same_questions_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")  # nothing here needs the network
    local = get_catalog("local")
    assert isinstance(local, LocalCatalog)
    assert [c.id for c in local.search("arithmetic preference")] == ["arithmetic-preference"]
    inspection = local.inspect("arithmetic-preference")
    preference = inspection.source
    assert preference.format == "preference" and preference.rows == 500 and preference.methods == ("sft", "dpo", "grpo")
    assert preference.columns == ("prompt", "chosen", "rejected") and len(inspection.sample) == 3
    assert local.inspect("arithmetic-prompts").source.mapping == ColumnMapping(
        prompt="prompt", completion="answer", answer="answer"
    )  # prompt + answer: SFT on the answer, which GRPO's reward also reads
    with pytest.raises(ValueError, match="one split, 'train'"):
        local.inspect("arithmetic-noisy", "test")


def test_an_unknown_catalog_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: hub, local"):
        get_catalog("s3")
