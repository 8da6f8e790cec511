"""Hugging Face Papers search against a loopback replay of the Hub's /api/papers/search."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from internflow.http import OfflineError, ServiceError, ServiceSession, session_for
from internflow.literature.hf_papers import search_hf_papers
from tests.replay_server import Recording, ReplayServer

ROUTE = "/api/papers/search"
QUERY = "supervised fine-tuning small language models arithmetic"


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    for switch in ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(switch, raising=False)


@pytest.fixture
def hub() -> Iterator[ReplayServer]:
    with ReplayServer({ROUTE: Recording.from_file("hf/papers_search_sft_arithmetic.json")}, hang_seconds=3) as server:
        yield server


def _session(url: str, retries: int = 3) -> ServiceSession:
    return session_for("hf-hub", base_url=url, timeout_s=0.5, backoff_s=0.0, min_interval_s=0.0, retries=retries)


def test_search_parses_the_hub_response_into_papers(hub: ReplayServer) -> None:
    papers = search_hf_papers(QUERY, 5, _session(hub.url))
    assert [p.arxiv_id for p in papers] == ["2401.08312", "2407.01234"]
    first = papers[0]
    assert first.title.startswith("Small Models, Exact Answers")
    assert first.summary.startswith("We study how far supervised fine-tuning")
    assert first.published == "2024-01-16" and first.url == "https://huggingface.co/papers/2401.08312"
    assert first.found_by == ("hf-papers",)
    [sent] = hub.requests
    assert sent.query == {"q": [QUERY], "limit": ["5"]}


def test_the_limit_caps_the_papers(hub: ReplayServer) -> None:
    assert len(search_hf_papers(QUERY, 1, _session(hub.url))) == 1


def test_429_500_and_a_timeout_are_survived(hub: ReplayServer) -> None:
    hub.inject(ROUTE, [429, 500, "timeout"])
    assert len(search_hf_papers(QUERY, 5, _session(hub.url))) == 2
    assert len(hub.requests) == 4


def test_a_hub_down_past_the_retries_is_a_service_error(hub: ReplayServer) -> None:
    hub.inject(ROUTE, [502, 502])
    with pytest.raises(ServiceError, match="hf-hub: .*HTTP 502 after 2 tries"):
        search_hf_papers(QUERY, 5, _session(hub.url, retries=1))


def test_a_body_that_is_not_a_list_is_named(hub: ReplayServer) -> None:
    hub.inject(ROUTE, [Recording(b'{"error": "maintenance"}', headers={"Content-Type": "application/json"})])
    with pytest.raises(ServiceError, match="expected a list, got dict"):
        search_hf_papers(QUERY, 5, _session(hub.url))


def test_offline_mode_sends_nothing(hub: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE=1"):
        search_hf_papers(QUERY, 5, _session(hub.url))
    assert hub.requests == []
