"""Free text inside markdown that the Prefect UI renders: table cells, code spans, embedded images.

The UI renders markdown artifacts, every string cell of a table artifact, and form descriptions
with a GitHub-flavoured markdown parser (`marked`) that drops raw HTML.  So a `|` in a proposal
summary splits a table row, `<base_url>` disappears as an unknown tag, and a lone `-` becomes a
list bullet.  Every table or text built from free text goes through `cell` or `code` here.
Escaping follows CommonMark's rule that any ASCII punctuation may be backslash-escaped, and
GFM's rule that a `\\|` inside a table cell (code spans included) is a literal pipe.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence

__all__ = ["cell", "code", "image", "table"]

# Characters that act anywhere in a line: escapes, code, emphasis, links, HTML, entities, cell breaks.
_INLINE = re.compile(r"([\\`*_\[\]<>|~&])")
# ...and those that act only at the start of a block: lists, headings, quotes, ordered lists.
_LEADING = re.compile(r"^([-+]|#{1,6}|\d{1,9}[.)])(?=\s|$)")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _clip(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: limit - 1].rstrip() + "…"


def cell(text: object, limit: int | None = None) -> str:
    """`text` as inline markdown that renders as itself: on one line (newlines become spaces),
    every markdown-active character backslash-escaped, cut to `limit` characters (with "…")
    before escaping.  None and empty text become an en dash, so a table cell is never blank."""
    flat = _clip(_one_line("" if text is None else str(text)), limit)
    if not flat:
        return "–"
    escaped = _INLINE.sub(r"\\\1", flat)
    return _LEADING.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], escaped)


def code(text: object, limit: int | None = None) -> str:
    """`text` as a code span that is safe inside a table cell: backticks inside it get a longer
    fence, pipes are escaped (GFM strips that backslash inside cells, code spans included)."""
    flat = _clip(_one_line(str(text)), limit).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GFM table from cells that are already markdown (made with `cell`, `code` or literals)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"table row has {len(row)} cells for {len(headers)} headers: {list(row)}")
        lines.append("| " + " | ".join(c or "–" for c in row) + " |")
    return "\n".join(lines)


def image(png: bytes, alt: str) -> str:
    """A PNG embedded as a data URL in markdown: the Prefect UI shows it with no file server and,
    unlike an image artifact, without printing the whole base64 text as a link beneath it."""
    return f"![{cell(alt)}](data:image/png;base64,{base64.b64encode(png).decode()})"
