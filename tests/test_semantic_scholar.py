"""Citation-graph walks against a loopback replay of Semantic Scholar's Graph API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from internflow.http import ServiceSession, session_for
from internflow.literature.semantic_scholar import walk_citations
from tests.replay_server import Recording, ReplayServer

SEED = "2401.08312"
PAPER = "/graph/v1/paper/arXiv:"


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    for switch in ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(switch, raising=False)


@pytest.fixture
def s2() -> Iterator[ReplayServer]:
    routes = {
        f"{PAPER}{SEED}/references": Recording.from_file(f"s2/references_{SEED}.json"),
        f"{PAPER}{SEED}/citations": Recording.from_file(f"s2/citations_{SEED}.json"),
        f"{PAPER}2106.09685/references": Recording.from_file("s2/references_2106.09685.json"),
        f"{PAPER}2106.09685/citations": Recording.from_file("s2/citations_empty.json"),
    }
    with ReplayServer(routes, hang_seconds=3) as server:
        yield server


def _session(url: str, retries: int = 3) -> ServiceSession:
    return session_for(
        "semantic-scholar", base_url=url, timeout_s=0.5, backoff_s=0.0, min_interval_s=0.0, retries=retries
    )


def test_one_hop_finds_references_then_citations_with_arxiv_ids(s2: ReplayServer) -> None:
    walk = walk_citations([SEED], max_depth=1, max_papers=10, session=_session(s2.url))
    assert [p.arxiv_id for p in walk.papers] == ["2106.09685", "2110.14168", "2407.01234", "2409.05566"]
    assert walk.papers[0].found_by == (f"reference of {SEED}",)
    assert walk.papers[2].found_by == (f"citation of {SEED}",)
    assert walk.papers[0].url == "https://arxiv.org/abs/2106.09685" and walk.papers[0].published == "2021"
    assert walk.requests == 2 and walk.stopped == ""
    sent = s2.requests_to(f"{PAPER}{SEED}/references")[0]
    assert sent.query["fields"] == ["paperId,externalIds,title,abstract,year,citationCount"]


def test_two_hops_go_breadth_first_and_skip_papers_the_graph_lacks(s2: ReplayServer) -> None:
    walk = walk_citations([SEED], max_depth=2, max_papers=10, session=_session(s2.url))
    assert [p.arxiv_id for p in walk.papers][-1] == "1902.00751"  # a reference of a reference
    assert walk.skipped == ["2110.14168", "2407.01234", "2409.05566"]  # 404: no recording


def test_the_count_bound_stops_the_walk(s2: ReplayServer) -> None:
    walk = walk_citations([SEED], max_depth=3, max_papers=3, session=_session(s2.url))
    assert len(walk.papers) == 3 and len(s2.requests) == 2


def test_depth_zero_sends_nothing(s2: ReplayServer) -> None:
    assert walk_citations([SEED], max_depth=0, session=_session(s2.url)).papers == [] and s2.requests == []


def test_injected_429_500_and_timeout_are_survived(s2: ReplayServer) -> None:
    s2.inject(f"{PAPER}{SEED}/references", [429, 500, "timeout"])
    walk = walk_citations([SEED], max_depth=1, session=_session(s2.url))
    assert len(walk.papers) == 4 and len(s2.requests) == 5


def test_a_service_down_for_good_ends_the_walk_with_the_reason_and_what_was_found(s2: ReplayServer) -> None:
    s2.inject(f"{PAPER}2106.09685/references", [503, 503])
    walk = walk_citations([SEED], max_depth=2, session=_session(s2.url, retries=1))
    assert len(walk.papers) == 4 and "HTTP 503 after 2 tries" in walk.stopped


def test_offline_mode_ends_the_walk_at_once(s2: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    walk = walk_citations([SEED], session=_session(s2.url))
    assert walk.papers == [] and "INTERNFLOW_OFFLINE=1" in walk.stopped and s2.requests == []
