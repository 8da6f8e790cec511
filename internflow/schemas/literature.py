"""The literature stage's request and report: papers found, ranked, and the hints read from them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from internflow.schemas.base import Frozen

__all__ = ["Hint", "LiteratureReport", "LiteratureRequest", "Paper"]


class LiteratureRequest(Frozen):
    query: str = Field(min_length=1)
    max_results: int = Field(5, ge=1, le=100)
    cache_dir: Path
    hf_papers: bool = Field(True, description="Also search Hugging Face Papers.")
    citation_depth: int = Field(1, ge=0, le=3, description="Hops through Semantic Scholar's citation graph.")
    max_citations: int = Field(10, ge=0, le=200, description="Papers the citation walk may add at most.")
    read_top: int = Field(2, ge=0, le=20, description="Top-ranked papers whose HTML method sections are read.")


class Paper(Frozen):
    arxiv_id: str
    title: str
    summary: str
    url: str
    published: str = ""
    found_by: tuple[str, ...] = Field((), description="Where it was found: arxiv, hf-papers, citations of X.")
    score: float = Field(0.0, description="Relevance to the campaign goal (higher is closer).")
    why: str = Field("", description="Why it ranked where it did.")


class Hint(Frozen):
    """Something actionable a paper says, with the passage it came from."""

    kind: Literal["method", "hyperparameter", "dataset"]
    name: str
    value: str = ""
    paper: str = Field(description="arXiv id of the paper the passage is from.")
    section: str = ""
    passage: str


class LiteratureReport(Frozen):
    query: str
    status: Literal["online", "cached", "offline"]
    papers: tuple[Paper, ...] = ()
    note: str = ""
    hints: tuple[Hint, ...] = ()
    sources: dict[str, str] = Field(default_factory=dict, description="What each service returned, or why not.")
