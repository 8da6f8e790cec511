"""Hugging Face Papers search: the Hub's `/api/papers/search`, the endpoint `HfApi.list_papers`
calls, parsed into huggingface_hub's own `PaperInfo`.

The request goes through `internflow.http` rather than `HfApi.list_papers` itself: in
huggingface_hub 2.4 that method sends one request on the library's shared httpx client, which
has no timeout and no retries, so a slow Hub would hang the stage and one 429 would lose the
search.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.hf_api import PaperInfo

from internflow.http import ServiceError, ServiceSession, get_json, session_for
from internflow.schemas import Paper

__all__ = ["paper_from_info", "search_hf_papers"]


def search_hf_papers(query: str, limit: int = 10, session: ServiceSession | None = None) -> list[Paper]:
    """Papers the Hub's paper search finds for `query`, best first (the Hub's order)."""
    session = session or session_for("hf-hub")
    payload: Any = get_json(session, "/api/papers/search", {"q": query, "limit": limit})
    if not isinstance(payload, list):
        raise ServiceError(session.policy.name, "/api/papers/search", f"expected a list, got {type(payload).__name__}")
    return [paper_from_info(PaperInfo(**entry)) for entry in payload[:limit] if isinstance(entry, dict)]


def paper_from_info(info: PaperInfo) -> Paper:
    summary = info.summary or getattr(info, "ai_summary", None) or ""
    return Paper(
        arxiv_id=info.id,
        title=" ".join((info.title or "").split()),
        summary=" ".join(summary.split()),
        url=f"https://huggingface.co/papers/{info.id}",
        published=info.published_at.date().isoformat() if info.published_at else "",
        found_by=("hf-papers",),
    )
