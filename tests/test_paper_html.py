"""Method sections from a paper's LaTeXML HTML, and the hints ranking pulls out of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from internflow.http import ServiceError, ServiceSession, session_for
from internflow.literature.paper_html import fetch_sections, method_sections, parse_sections
from internflow.literature.ranking import extract_hints, rank_papers
from internflow.schemas import Paper
from tests.replay_server import RECORDINGS, Recording, ReplayServer

ARXIV_ID = "2401.08312v2"
HTML = (RECORDINGS / "html" / f"{ARXIV_ID}.html").read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    for switch in ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(switch, raising=False)


@pytest.fixture
def sites() -> Iterator[ReplayServer]:
    page = Recording(HTML.encode(), headers={"Content-Type": "text/html; charset=utf-8"})
    with ReplayServer({f"/ar5iv/html/{ARXIV_ID}": page}, hang_seconds=3) as server:
        yield server


def _session(url: str) -> ServiceSession:
    return session_for("paper-html", base_url=url, timeout_s=0.5, backoff_s=0.0, min_interval_s=0.0)


def test_sections_come_with_their_titles_and_formulas_as_tex() -> None:
    sections = parse_sections(HTML)
    assert [s.title for s in sections] == ["Introduction", "Method", "Training details", "Related Work"]
    assert "learning rate of 2\\times 10^{-4} with a cosine schedule" in sections[2].text
    assert "Method" not in sections[1].text and "Training details" not in sections[1].text  # nested: apart
    assert [s.title for s in method_sections(sections)] == ["Method", "Training details"]


def test_hints_name_method_hyperparameters_and_datasets_with_their_passage() -> None:
    hints = extract_hints("2401.08312", method_sections(parse_sections(HTML)))
    found = {(h.kind, h.name, h.value) for h in hints}
    assert {
        ("hyperparameter", "learning_rate", "2e-4"),
        ("hyperparameter", "learning_rate", "1e-3"),
        ("hyperparameter", "batch_size", "32"),
        ("hyperparameter", "max_steps", "600"),
        ("hyperparameter", "warmup_steps", "30"),
        ("hyperparameter", "lora_r", "16"),
        ("method", "completion_only_loss", ""),
        ("method", "reversed_digits", ""),
        ("method", "lora", ""),
        ("dataset", "GSM8K", ""),
        ("dataset", "nvidia/OpenMathInstruct-2", ""),
    } <= found
    rate = next(h for h in hints if h.value == "1e-3")
    assert rate.passage.startswith("For the LoRA runs") and rate.section == "Training details"
    assert rate.paper == "2401.08312"


def test_ranking_prefers_goal_terms_in_the_title_and_says_why() -> None:
    goal = "supervised fine-tuning small language models arithmetic"
    title = "Supervised fine-tuning for arithmetic"
    on_topic = Paper(arxiv_id="1", title=title, summary="", url="u", found_by=("arxiv", "hf-papers"))
    aside = Paper(arxiv_id="2", title="Adapters", summary="We study arithmetic.", url="u", found_by=("arxiv",))
    first, second = rank_papers([aside, on_topic], goal)
    assert first.arxiv_id == "1" and first.score > second.score
    assert first.why.startswith("title: arithmetic, fine-tuning, supervised") and "arxiv + hf-papers" in first.why
    assert second.why.startswith("abstract: arithmetic")


def test_fetch_falls_back_to_ar5iv_when_arxiv_has_no_html(sites: ReplayServer) -> None:
    bases = (f"{sites.url}/arxiv", f"{sites.url}/ar5iv")
    url, sections = fetch_sections(ARXIV_ID, _session(sites.url), bases)
    assert url == f"{sites.url}/ar5iv/html/{ARXIV_ID}" and [s.title for s in sections] == ["Method", "Training details"]
    assert [r.path for r in sites.requests] == [f"/arxiv/html/{ARXIV_ID}", f"/ar5iv/html/{ARXIV_ID}"]


def test_injected_faults_are_survived_and_a_dead_site_is_named(sites: ReplayServer) -> None:
    sites.inject(f"/ar5iv/html/{ARXIV_ID}", [429, "timeout", 500])
    _, sections = fetch_sections(ARXIV_ID, _session(sites.url), (f"{sites.url}/ar5iv",))
    assert len(sections) == 2
    sites.inject(f"/ar5iv/html/{ARXIV_ID}", [503] * 4)
    with pytest.raises(ServiceError, match="paper-html: .*HTTP 503 after 4 tries"):
        fetch_sections(ARXIV_ID, _session(sites.url), (f"{sites.url}/ar5iv",))
