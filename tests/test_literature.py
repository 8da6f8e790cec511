"""The literature stage, with the real arxiv client pointed at a loopback server replaying recorded feeds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import arxiv
import pytest
from prefect import flow

from internflow.http import session_for
from internflow.literature.survey import Services, survey
from internflow.schemas import LiteratureReport, LiteratureRequest
from internflow.tasks.literature import arxiv_client, search_arxiv, survey_literature
from tests.replay_server import Recording, ReplayServer, unused_port

QUERY = "supervised fine-tuning small language models arithmetic"
ROUTE = "/api/query"
RECORDED_IDS = ["2401.08312v2", "2403.11957v1", "2406.04471v1"]


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    for switch in ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE"):  # a developer's shell must not skew the tests
        monkeypatch.delenv(switch, raising=False)


@pytest.fixture
def arxiv_server() -> Iterator[ReplayServer]:
    recording = Recording.from_file("arxiv/search_sft_arithmetic.xml")
    with ReplayServer({ROUTE: recording}, hang_seconds=5) as server:
        yield server


def _client(base_url: str, num_retries: int = 3) -> arxiv.Client:
    client = arxiv_client(page_size=5, delay_seconds=0, num_retries=num_retries, timeout_s=0.5)
    client.query_url_format = f"{base_url}{ROUTE}?{{}}"
    return client


def _request(tmp_path: Path, query: str = QUERY, max_results: int = 5) -> LiteratureRequest:
    return LiteratureRequest(query=query, max_results=max_results, cache_dir=tmp_path / "cache")


def test_online_search_returns_recorded_papers_and_caches(arxiv_server: ReplayServer, tmp_path: Path) -> None:
    report = search_arxiv(_request(tmp_path), _client(arxiv_server.url))

    assert report.status == "online" and report.note == ""
    assert [p.arxiv_id for p in report.papers] == RECORDED_IDS
    first = report.papers[0]
    assert first.title.startswith(
        "Small Models, Exact Answers: Supervised Fine-Tuning of Sub-Billion-Parameter Language"
    )
    assert first.url == "http://arxiv.org/abs/2401.08312v2" and first.published == "2024-01-16"
    assert "\n" not in first.summary and first.summary.startswith("We study how far supervised fine-tuning")
    assert len(list((tmp_path / "cache").glob("arxiv-*.json"))) == 1
    assert list((tmp_path / "cache").glob("*.tmp")) == []
    [sent] = arxiv_server.requests  # totalResults=3 in the feed: no request for a second page
    assert sent.query["search_query"] == [QUERY] and sent.query["sortBy"] == ["relevance"]
    assert sent.headers["user-agent"].startswith("arxiv.py/") and "authorization" not in sent.headers


def test_a_repeated_query_is_served_from_the_cache_without_a_request(
    arxiv_server: ReplayServer, tmp_path: Path
) -> None:
    online = search_arxiv(_request(tmp_path), _client(arxiv_server.url))
    respaced = "  Supervised  fine-tuning small language models ARITHMETIC"
    again = search_arxiv(_request(tmp_path, query=respaced))

    assert again.status == "cached" and again.papers == online.papers
    assert len(arxiv_server.requests) == 1


def test_max_results_limits_the_papers_and_keys_the_cache(arxiv_server: ReplayServer, tmp_path: Path) -> None:
    two = search_arxiv(_request(tmp_path, max_results=2), _client(arxiv_server.url))
    five = search_arxiv(_request(tmp_path, max_results=5), _client(arxiv_server.url))

    assert [p.arxiv_id for p in two.papers] == RECORDED_IDS[:2] and len(five.papers) == 3
    assert five.status == "online" and len(arxiv_server.requests) == 2


def test_rate_limit_then_server_error_are_retried(arxiv_server: ReplayServer, tmp_path: Path) -> None:
    arxiv_server.inject(ROUTE, [429, 500])

    report = search_arxiv(_request(tmp_path), _client(arxiv_server.url))

    assert report.status == "online" and [p.arxiv_id for p in report.papers] == RECORDED_IDS
    assert len(arxiv_server.requests) == 3


def test_a_hung_server_times_out_and_the_retry_succeeds(arxiv_server: ReplayServer, tmp_path: Path) -> None:
    arxiv_server.inject(ROUTE, ["timeout"])  # held for 5 s; the client gives up after 0.5 s

    started = time.monotonic()
    report = search_arxiv(_request(tmp_path), _client(arxiv_server.url))

    assert report.status == "online" and len(report.papers) == 3
    assert len(arxiv_server.requests) == 2 and time.monotonic() - started < 4


def test_a_dropped_connection_is_retried(arxiv_server: ReplayServer, tmp_path: Path) -> None:
    arxiv_server.inject(ROUTE, ["disconnect"])

    report = search_arxiv(_request(tmp_path), _client(arxiv_server.url))

    assert report.status == "online" and len(arxiv_server.requests) == 2


def test_errors_past_the_retries_report_offline_and_why(arxiv_server: ReplayServer, tmp_path: Path) -> None:
    arxiv_server.inject(ROUTE, [503] * 3)

    report = search_arxiv(_request(tmp_path), _client(arxiv_server.url, num_retries=2))

    assert report.status == "offline" and report.papers == ()
    assert report.note.startswith("arXiv unreachable: Page request resulted in HTTP 503")
    assert "after 3 tries" in report.note and "no cached papers" in report.note
    assert not (tmp_path / "cache").exists(), "a failed search must not be cached"


def test_an_unreachable_server_reports_offline_without_raising(tmp_path: Path) -> None:
    with unused_port() as port:
        report = search_arxiv(_request(tmp_path), _client(f"http://127.0.0.1:{port}", num_retries=1))

    assert report.status == "offline" and report.papers == ()
    assert report.note.startswith("arXiv unreachable: ConnectionError")
    assert "Connection refused" in report.note


def test_no_matches_is_said_not_silent_and_not_cached(tmp_path: Path) -> None:
    with ReplayServer({ROUTE: Recording.from_file("arxiv/search_empty.xml")}) as server:
        report = search_arxiv(_request(tmp_path, query="qwertyuiop zxcvbnm"), _client(server.url))

    assert report.status == "online" and report.papers == () and "no papers" in report.note
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("switch", ["INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_mode_makes_no_request(
    switch: str, arxiv_server: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(switch, "1")

    report = search_arxiv(_request(tmp_path), _client(arxiv_server.url))

    assert report.status == "offline" and report.papers == ()
    assert report.note.startswith(f"offline mode ({switch}=1)")
    assert arxiv_server.requests == []


def test_offline_after_a_search_serves_the_cached_papers(
    arxiv_server: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    online = search_arxiv(_request(tmp_path), _client(arxiv_server.url))
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")

    same = search_arxiv(_request(tmp_path))
    fewer = search_arxiv(_request(tmp_path, max_results=2))

    assert same.status == "cached" and same.papers == online.papers
    assert fewer.status == "offline" and fewer.papers == online.papers[:2]
    assert "2 papers from an earlier search" in fewer.note
    assert len(arxiv_server.requests) == 1


def test_a_corrupt_cache_file_is_a_miss(arxiv_server: ReplayServer, tmp_path: Path) -> None:
    search_arxiv(_request(tmp_path), _client(arxiv_server.url))
    [cache_file] = (tmp_path / "cache").glob("arxiv-*.json")
    cache_file.write_text("{not json")

    report = search_arxiv(_request(tmp_path), _client(arxiv_server.url))

    assert report.status == "online" and len(arxiv_server.requests) == 2


@flow
def _survey(request: LiteratureRequest) -> LiteratureReport:
    return survey_literature(request)


async def _read_artifact(key: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        only_key = ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        artifacts = await client.read_artifacts(artifact_filter=only_key)
    return [str(a.data) for a in artifacts]


def test_the_task_publishes_a_literature_artifact(
    prefect_harness: None, arxiv_server: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    search_arxiv(_request(tmp_path), _client(arxiv_server.url))  # fills the cache: the task needs no network
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")

    state = _survey(_request(tmp_path), return_state=True)

    assert state.is_completed()
    report = state.result()
    assert isinstance(report, LiteratureReport) and report.status == "cached" and len(report.papers) == 3
    markdown = asyncio.run(_read_artifact("literature"))
    assert any("Status:** cached" in m and "[Small Models, Exact Answers" in m for m in markdown)
    assert any("(http://arxiv.org/abs/2406.04471v1)" in m for m in markdown)


def test_the_task_publishes_an_offline_artifact_and_completes(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")

    state = _survey(_request(tmp_path, query="an uncached query"), return_state=True)

    assert state.is_completed() and state.result().status == "offline"
    assert any("offline mode (INTERNFLOW_OFFLINE=1)" in m for m in asyncio.run(_read_artifact("literature")))


# ---------------------------------------------------------------- the whole survey ----------

S2 = "/graph/v1/paper/arXiv:"


@pytest.fixture
def services_server() -> Iterator[ReplayServer]:
    html = Recording.from_file("html/2401.08312v2.html", headers={"Content-Type": "text/html; charset=utf-8"})
    routes = {
        ROUTE: Recording.from_file("arxiv/search_sft_arithmetic.xml"),
        "/api/papers/search": Recording.from_file("hf/papers_search_sft_arithmetic.json"),
        f"{S2}2401.08312/references": Recording.from_file("s2/references_2401.08312.json"),
        f"{S2}2401.08312/citations": Recording.from_file("s2/citations_2401.08312.json"),
        "/html/2401.08312": html,
    }
    with ReplayServer(routes, hang_seconds=3) as server:
        yield server


def _services(url: str) -> Services:
    fast = {"base_url": url, "timeout_s": 0.5, "backoff_s": 0.0, "min_interval_s": 0.0}
    return Services(
        hf_hub=session_for("hf-hub", **fast),
        semantic_scholar=session_for("semantic-scholar", **fast),
        paper_html=session_for("paper-html", **fast),
        html_bases=(url,),
        arxiv_client=_client(url),
    )


def _survey_request(tmp_path: Path) -> LiteratureRequest:
    return LiteratureRequest(query=QUERY, max_results=5, cache_dir=tmp_path / "cache", read_top=1, citation_depth=1)


def test_a_survey_merges_sources_walks_citations_reads_the_top_paper_and_ranks(
    services_server: ReplayServer, tmp_path: Path
) -> None:
    report = survey(_survey_request(tmp_path), _services(services_server.url))

    assert report.status == "online"
    by_id = {p.arxiv_id: p for p in report.papers}
    assert by_id["2401.08312v2"].found_by == ("arxiv", "hf-papers")  # one paper, two sources
    assert by_id["2409.05566"].found_by == ("citation of 2401.08312",)
    assert (
        report.papers[0].arxiv_id == "2401.08312v2"
        and "title: arithmetic, fine-tuning, supervised" in report.papers[0].why
    )
    assert [p.score for p in report.papers] == sorted((p.score for p in report.papers), reverse=True)
    assert ("hyperparameter", "learning_rate", "2e-4") in {(h.kind, h.name, h.value) for h in report.hints}
    assert report.sources["hf-papers"] == "online: 2 papers"
    # Two seeds, the top two papers; the second is not in the recorded graph (404: skipped).
    assert report.sources["semantic-scholar"] == "online: 4 papers from ['2401.08312', '2403.11957']"
    assert by_id["2407.01234"].found_by == ("hf-papers", "citation of 2401.08312")
    assert report.sources["html 2401.08312"] == "online: 2 method sections"


def test_a_repeated_survey_is_served_from_the_caches_and_survives_injected_faults(
    services_server: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services_server.inject("/api/papers/search", [429, "timeout"])
    services_server.inject(f"{S2}2401.08312/references", [500])
    first = survey(_survey_request(tmp_path), _services(services_server.url))
    sent = len(services_server.requests)
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")

    again = survey(_survey_request(tmp_path), _services(services_server.url))

    assert len(services_server.requests) == sent
    assert again.status == "cached" and again.papers == first.papers and again.hints == first.hints
    assert all(note.startswith("cached") for name, note in again.sources.items() if name != "arxiv")


def test_a_survey_offline_with_nothing_cached_says_so_for_every_service(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    report = survey(_survey_request(tmp_path))
    assert report.status == "offline" and report.papers == ()
    assert report.sources["hf-papers"].startswith("offline: hf-hub: offline mode (INTERNFLOW_OFFLINE=1)")


def test_a_citation_walk_cut_short_is_marked_partial_and_asked_again_not_cached_as_complete(
    services_server: ReplayServer, tmp_path: Path
) -> None:
    second_seed = f"{S2}2403.11957"
    services_server.add_route(second_seed, Recording.from_file("s2/citations_empty.json"))
    services_server.inject(second_seed, [503] * 4)  # the walk's second paper: 503 through every retry
    services = _services(services_server.url)
    fast = {"base_url": services_server.url, "timeout_s": 0.5, "backoff_s": 0.0, "min_interval_s": 0.0}
    services.semantic_scholar = session_for("semantic-scholar", **fast, cooldown_s=0.2)

    cut = survey(_survey_request(tmp_path), services)
    assert cut.sources["semantic-scholar"].startswith("partial: 4 papers from ['2401.08312', '2403.11957'] (cut short")
    said = cut.sources["semantic-scholar"]
    assert "HTTP 503" in said and "asked again next survey" in said
    time.sleep(0.3)  # past the breaker's cool-down
    asked = len(services_server.requests_to(S2))

    healed = survey(_survey_request(tmp_path), services)

    assert len(services_server.requests_to(S2)) > asked, "a partial answer must be asked again, not served as complete"
    assert healed.sources["semantic-scholar"] == "online: 4 papers from ['2401.08312', '2403.11957']"
    again = survey(_survey_request(tmp_path), services)
    assert again.sources["semantic-scholar"].startswith("cached: 4 papers")


def test_services_that_all_hang_are_paid_for_once_not_in_every_survey(tmp_path: Path) -> None:
    routes = {ROUTE: Recording.from_file("arxiv/search_sft_arithmetic.xml"), "/api/papers/search": Recording(b"[]")}
    with ReplayServer(routes, hang_seconds=2) as hung:
        hung.inject(ROUTE, ["timeout"] * 20)
        hung.inject("/api/papers/search", ["timeout"] * 20)
        first = survey(_survey_request(tmp_path), _services(hung.url))
        sent = len(hung.requests)
        started = time.monotonic()

        second = survey(_survey_request(tmp_path), _services(hung.url))  # the next iteration's survey

    assert first.status == "offline" and sent >= 2
    assert len(hung.requests) == sent, "a service that just failed was asked again"
    assert time.monotonic() - started < 0.5
    assert "not asked: it failed" in second.note and "not asked: it failed" in second.sources["hf-papers"]
