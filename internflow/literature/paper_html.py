"""The methodology and training-details sections of a paper, from its HTML version: arXiv's own
LaTeXML rendering (arxiv.org/html/<id>), or ar5iv's when arXiv has none.

LaTeXML marks sections `<section class="ltx_section">` (and `ltx_subsection`, ...) with an
`ltx_title` heading and `ltx_para` paragraphs; formulas are `<math alttext="...">`, read as
their TeX source so "10^{-4}" survives as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.html

from internflow.http import ServiceError, ServiceSession, get, session_for

__all__ = [
    "ARXIV_HTML",
    "AR5IV_HTML",
    "METHOD_SECTION",
    "Section",
    "fetch_sections",
    "method_sections",
    "parse_sections",
]

ARXIV_HTML = "https://arxiv.org"
AR5IV_HTML = "https://ar5iv.labs.arxiv.org"
# Headings of the sections that say what was done and how: method, training setup, hyper-parameters.
METHOD_SECTION = re.compile(
    r"method|approach|training|fine-?tuning|setup|implementation|hyper-?param|experiment|details|data", re.I
)
_SECTION_CLASSES = ("ltx_section", "ltx_subsection", "ltx_subsubsection", "ltx_appendix")


@dataclass(frozen=True)
class Section:
    title: str
    text: str


def _text(element: lxml.html.HtmlElement) -> str:
    for math in element.iter("math"):
        tex, tail = math.get("alttext") or "", math.tail
        math.clear()  # drop the MathML rendering (clear() drops the tail too: put it back)
        math.text, math.tail = tex, tail
    return " ".join(element.text_content().split())


def parse_sections(html: str) -> list[Section]:
    """Every section and subsection with its own paragraphs (nested sections come separately)."""
    root = lxml.html.fromstring(html)
    sections = []
    for node in root.iter("section"):
        if not set((node.get("class") or "").split()) & set(_SECTION_CLASSES):
            continue
        heading = next((h for h in node if h.tag in ("h1", "h2", "h3", "h4", "h5", "h6")), None)
        if heading is None:
            continue
        for tag in heading.find_class("ltx_tag"):  # "3.1 " numbering
            tag.drop_tree()
        paragraphs = [_text(p) for p in node if "ltx_para" in (p.get("class") or "")]
        sections.append(Section(title=_text(heading), text=" ".join(p for p in paragraphs if p)))
    return sections


def method_sections(sections: list[Section]) -> list[Section]:
    return [s for s in sections if s.text and METHOD_SECTION.search(s.title)]


def fetch_sections(
    arxiv_id: str, session: ServiceSession | None = None, bases: tuple[str, ...] = (ARXIV_HTML, AR5IV_HTML)
) -> tuple[str, list[Section]]:
    """(the URL read, its method sections); arXiv's HTML first, ar5iv when arXiv has none (404)."""
    session = session or session_for("paper-html")
    last: ServiceError | None = None
    for base in bases:
        url = f"{base.rstrip('/')}/html/{arxiv_id}"
        try:
            response = get(session, url)
        except ServiceError as error:
            if error.status != 404:
                raise
            last = error
            continue
        return url, method_sections(parse_sections(response.text))
    assert last is not None  # bases is never empty
    raise last
