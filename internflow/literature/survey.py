"""A literature survey for one goal: arXiv and Hugging Face Papers search, a bounded walk of the
citation graph, the method sections of the top papers read from their HTML, ranking and hints.

Each service's answer is cached on disk (one JSON file per query or paper), so a repeated survey
sends nothing and an offline one reuses what an earlier one found.  A partial answer (a citation
walk a failure cut short) is cached as partial: the next survey asks again, and keeps the partial
papers if that fails too.  A service that fails is named with its reason in `sources`; the survey
itself never raises.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from internflow.http import OfflineError, ServiceError, ServiceSession, session_for
from internflow.literature.arxiv_search import search_arxiv, write_atomically
from internflow.literature.hf_papers import search_hf_papers
from internflow.literature.paper_html import Section, fetch_sections
from internflow.literature.ranking import extract_hints, rank_papers
from internflow.literature.semantic_scholar import walk_citations
from internflow.schemas import Hint, LiteratureReport, LiteratureRequest, Paper

__all__ = ["Services", "survey"]

T = TypeVar("T")


@dataclass
class Services:
    """The sessions a survey talks through (tests point them at a replay server)."""

    hf_hub: ServiceSession = field(default_factory=lambda: session_for("hf-hub"))
    semantic_scholar: ServiceSession = field(default_factory=lambda: session_for("semantic-scholar"))
    paper_html: ServiceSession = field(default_factory=lambda: session_for("paper-html"))
    html_bases: tuple[str, ...] = ("https://arxiv.org", "https://ar5iv.labs.arxiv.org")
    arxiv_client: Any = None  # an arxiv.Client; None: the default one


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{key.split(':')[0]}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


@dataclass
class _Answer(Generic[T]):
    items: list[T]
    how: str  # online | cached | partial | cached partial
    note: str = ""  # why an answer is partial


def _cached_papers(cache_dir: Path, key: str, fetch: Callable[[], tuple[list[Paper], str]]) -> _Answer[Paper]:
    """A complete cached answer as is; otherwise `fetch()` → (papers, why partial or ""), stored.  A
    partial answer is stored marked partial, so it is fetched again next time; when that fails, the
    partial papers still serve.  A failed fetch with nothing stored raises and stores nothing."""
    path = _cache_path(cache_dir, key)
    stored, stored_note = _read_papers(path)
    if stored is not None and not stored_note:
        return _Answer(stored, "cached")
    try:
        papers, partial = fetch()
    except (ServiceError, OfflineError) as error:
        if stored is None:
            raise
        return _Answer(stored, "cached partial", f"{stored_note}; asked again: {error}")
    if partial and stored is not None and len(stored) > len(papers):
        papers = stored  # keep the fuller of two partial answers
    body = [p.model_dump() for p in papers]
    write_atomically(path, json.dumps({"partial": partial, "papers": body} if partial else body))
    return _Answer(papers, "partial" if partial else "online", partial)


def _read_papers(path: Path) -> tuple[list[Paper] | None, str]:
    """(papers, why partial or "") from a cache file; (None, "") when missing or unreadable.  A
    complete answer is a JSON list; a partial one {"partial": why, "papers": [...]}."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(raw, dict):
            return [Paper.model_validate(p) for p in raw["papers"]], str(raw["partial"]) or "partial"
        return [Paper.model_validate(p) for p in raw], ""
    except (OSError, ValueError, KeyError, TypeError):
        return None, ""


def _cached_sections(cache_dir: Path, key: str, fetch: Callable[[], list[Section]]) -> _Answer[Section]:
    path = _cache_path(cache_dir, key)
    try:
        return _Answer([Section(title, text) for title, text in json.loads(path.read_text(encoding="utf-8"))], "cached")
    except (OSError, ValueError, TypeError):
        pass
    sections = fetch()
    write_atomically(path, json.dumps([[s.title, s.text] for s in sections]))
    return _Answer(sections, "online")


def _merge(papers: list[Paper]) -> list[Paper]:
    """One entry per arXiv id (version suffix aside), remembering every source that found it."""
    merged: dict[str, Paper] = {}
    for paper in papers:
        key = _bare_id(paper.arxiv_id)
        if key in merged:
            known = merged[key]
            found_by = tuple(dict.fromkeys(known.found_by + paper.found_by))
            merged[key] = known.model_copy(update={"found_by": found_by, "summary": known.summary or paper.summary})
        else:
            merged[key] = paper
    return list(merged.values())


def _bare_id(arxiv_id: str) -> str:
    head, _, version = arxiv_id.rpartition("v")
    return head if head and version.isdigit() and "." in head else arxiv_id


def survey(request: LiteratureRequest, services: Services | None = None) -> LiteratureReport:
    services = services or Services()
    arxiv = search_arxiv(request, services.arxiv_client)
    sources = {"arxiv": f"{arxiv.status}: {len(arxiv.papers)} papers. {arxiv.note}".strip()}
    papers = [p.model_copy(update={"found_by": p.found_by or ("arxiv",)}) for p in arxiv.papers]
    answered = arxiv.status != "offline"
    # No DNS for arXiv means no network at all: the other services would only burn their retries.
    network_down = "HostNotFound" in arxiv.note

    def attempt(name: str, call: Callable[[], _Answer[T]], what: str) -> list[T]:
        nonlocal answered
        if network_down:
            sources[name] = "skipped: arXiv's host could not be resolved (no network)"
            return []
        try:
            answer = call()
        except (ServiceError, OfflineError) as error:
            sources[name] = f"offline: {error}"
            return []
        answered = answered or answer.how in ("online", "partial")
        note = f" (cut short: {answer.note}; asked again next survey)" if answer.note else ""
        sources[name] = f"{answer.how}: {len(answer.items)} {what}{note}"
        return answer.items

    cache, query = request.cache_dir, " ".join(request.query.lower().split())
    if request.hf_papers:
        hf_key = f"hf-papers:{query}:{request.max_results}"
        fetch_hf = lambda: (search_hf_papers(request.query, request.max_results, services.hf_hub), "")  # noqa: E731
        papers = _merge(papers + attempt("hf-papers", lambda: _cached_papers(cache, hf_key, fetch_hf), "papers"))

    if request.citation_depth and papers:
        seeds = [_bare_id(p.arxiv_id) for p in rank_papers(papers, request.query)[:2]]
        s2_key = f"s2:{','.join(seeds)}:{request.citation_depth}:{request.max_citations}"
        fetch_s2 = lambda: _walk(seeds, request, services.semantic_scholar)  # noqa: E731
        walked = attempt("semantic-scholar", lambda: _cached_papers(cache, s2_key, fetch_s2), f"papers from {seeds}")
        papers = _merge(papers + walked)

    sections: dict[str, list[Section]] = {}
    hints: list[Hint] = []
    for paper in rank_papers(papers, request.query)[: request.read_top]:
        found = attempt(f"html {_bare_id(paper.arxiv_id)}", _reader(paper, cache, services), "method sections")
        if found:
            sections[paper.arxiv_id] = found
            hints += extract_hints(_bare_id(paper.arxiv_id), found)

    ranked = rank_papers(papers, request.query, sections)[: request.max_results + request.max_citations]
    # arXiv's own status, unless arXiv was offline and another service answered live.
    status = "online" if arxiv.status == "offline" and answered else arxiv.status
    return LiteratureReport(
        query=request.query, status=status, papers=tuple(ranked), note=arxiv.note, hints=tuple(hints), sources=sources
    )


def _reader(paper: Paper, cache: Path, services: Services) -> Callable[[], _Answer[Section]]:
    arxiv_id = _bare_id(paper.arxiv_id)
    fetch = lambda: fetch_sections(arxiv_id, services.paper_html, services.html_bases)[1]  # noqa: E731
    return lambda: _cached_sections(cache, f"html:{arxiv_id}", fetch)


def _walk(seeds: list[str], request: LiteratureRequest, session: ServiceSession) -> tuple[list[Paper], str]:
    """The walk's papers, and why it stopped early ("" when it finished)."""
    walk = walk_citations(seeds, request.citation_depth, request.max_citations, session=session)
    if walk.stopped and not walk.papers:
        raise ServiceError("semantic-scholar", "/graph/v1/paper", walk.stopped)
    return walk.papers, walk.stopped
