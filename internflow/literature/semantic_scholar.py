"""The citation graph from Semantic Scholar's Graph API: a paper's references and citations,
walked breadth-first from seed papers with a bound on depth and on the number of papers.

A paper missing from the graph (404) is skipped and said; any other failure ends the walk with
what was found so far and the reason, never an exception out of `walk_citations`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from internflow.http import OfflineError, ServiceError, ServiceSession, get_json, session_for
from internflow.schemas import Paper

__all__ = ["FIELDS", "CitationWalk", "neighbours", "walk_citations"]

FIELDS = "paperId,externalIds,title,abstract,year,citationCount"


@dataclass
class CitationWalk:
    papers: list[Paper] = field(default_factory=list)  # in breadth-first order, seeds excluded
    requests: int = 0
    stopped: str = ""  # why the walk ended early, if it did
    skipped: list[str] = field(default_factory=list)  # papers the graph does not know


def _paper(node: dict[str, Any], found_by: str) -> Paper | None:
    arxiv_id = (node.get("externalIds") or {}).get("ArXiv")
    if not arxiv_id or not node.get("title"):
        return None  # only arXiv papers can be read and cited by id later
    return Paper(
        arxiv_id=str(arxiv_id),
        title=" ".join(str(node["title"]).split()),
        summary=" ".join(str(node.get("abstract") or "").split()),
        url=f"https://arxiv.org/abs/{arxiv_id}",
        published=str(node.get("year") or ""),
        found_by=(found_by,),
    )


def neighbours(session: ServiceSession, arxiv_id: str, per_paper: int) -> tuple[list[Paper], int]:
    """References then citations of one arXiv paper, as Papers; and the number of requests made."""
    found: list[Paper] = []
    for edge, key in (("references", "citedPaper"), ("citations", "citingPaper")):
        payload = get_json(session, f"/graph/v1/paper/arXiv:{arxiv_id}/{edge}", {"fields": FIELDS, "limit": per_paper})
        for entry in payload.get("data") or []:
            paper = _paper(entry.get(key) or {}, f"{edge[:-1]} of {arxiv_id}")
            if paper is not None:
                found.append(paper)
    return found, 2


def walk_citations(
    seeds: list[str],
    max_depth: int = 1,
    max_papers: int = 20,
    per_paper: int = 10,
    session: ServiceSession | None = None,
) -> CitationWalk:
    """Breadth-first over references and citations from `seeds` (arXiv ids): at most `max_depth`
    hops and `max_papers` new papers."""
    session = session or session_for("semantic-scholar")
    walk = CitationWalk()
    seen = set(seeds)
    queue = deque((seed, 0) for seed in seeds)
    while queue and len(walk.papers) < max_papers:
        arxiv_id, depth = queue.popleft()
        if depth >= max_depth:
            continue
        try:
            found, sent = neighbours(session, arxiv_id, per_paper)
        except ServiceError as error:
            if error.status == 404:
                walk.skipped.append(arxiv_id)
                continue
            walk.stopped = str(error)
            break
        except OfflineError as error:
            walk.stopped = str(error)
            break
        walk.requests += sent
        for paper in found:
            if paper.arxiv_id not in seen and len(walk.papers) < max_papers:
                seen.add(paper.arxiv_id)
                walk.papers.append(paper)
                queue.append((paper.arxiv_id, depth + 1))
    return walk
