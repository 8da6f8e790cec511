"""Free text in markdown tables renders as itself.  Rendered here with markdown-it-py (GFM tables),
a stand-in for the Prefect UI's `marked`; tests/test_deployments.py checks the UI itself."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from internflow.markdown import cell, code, image, table

GFM = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def rendered_cells(markdown: str) -> list[list[str]]:
    """Each body row's cells as plain text (tags dropped, entities decoded)."""
    html = GFM.render(markdown)
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)[1:]
    unescape = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&amp;": "&"}

    def text(fragment: str) -> str:
        plain = re.sub(r"<[^>]+>", "", fragment)
        return re.sub("|".join(unescape), lambda m: unescape[m.group(0)], plain).strip()

    return [[text(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)] for row in rows]


def test_pipe_in_a_proposal_summary_no_longer_splits_the_planner_log_row() -> None:
    signature = "sft|init=base|arithmetic-direct|n=480|lr=1.0e-04"
    why = "loss still falling | try more steps"
    markdown = table(["proposal", "why", "guard", "outcome"], [[code(signature), cell(why), "accept", "74.0 %"]])
    assert rendered_cells(markdown) == [[signature, why, "accept", "74.0 %"]]


@pytest.mark.parametrize(
    "text",
    [
        "openai:<base_url>:<model>",  # an HTML-looking placeholder is not dropped
        "*not bold* _not italic_ ~~not struck~~",
        "[not a link](http://example.com)",
        "`not code`",
        "back\\slash and &lt; entity",
        "- not a bullet",
        "-",
        "1. not a list",
        "# not a heading",
    ],
)
def test_free_text_in_a_cell_renders_as_itself(text: str) -> None:
    assert rendered_cells(table(["h"], [[cell(text)]])) == [[text]]


def test_empty_or_missing_text_is_a_dash_not_a_blank_cell() -> None:
    assert rendered_cells(table(["a", "b"], [[cell(None), cell("")]])) == [["–", "–"]]


def test_multi_line_text_stays_on_its_row_and_is_cut_with_an_ellipsis() -> None:
    assert cell("one\ntwo\n\nthree") == "one two three"
    assert cell("x" * 50, limit=10) == "x" * 9 + "…"


def test_backticks_inside_a_code_span_get_a_longer_fence() -> None:
    assert rendered_cells(table(["h"], [[code("a`b|c")], [code("`x`")]])) == [["a`b|c"], ["`x`"]]


def test_a_row_with_the_wrong_number_of_cells_is_refused() -> None:
    with pytest.raises(ValueError, match="2 cells for 3 headers"):
        table(["a", "b", "c"], [["1", "2"]])


def test_an_embedded_image_is_a_data_url_with_escaped_alt_text() -> None:
    markdown = image(b"\x89PNG fake", "score [per] iteration")
    assert markdown.startswith("![score \\[per\\] iteration](data:image/png;base64,iVBORyBmYWtl")
    assert '<img src="data:image/png;base64,' in GFM.render(markdown)
