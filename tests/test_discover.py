"""The data-discovery stage's artifact: every candidate's free text renders as itself."""

from __future__ import annotations

from internflow.schemas import DataPlan, DatasetCheck, DataSource, DiscoveryReport
from internflow.tasks.discover import data_candidates_markdown
from tests.test_markdown import rendered_cells


def test_a_pipe_in_a_vetting_note_is_escaped_once_and_renders_as_itself() -> None:
    """Regression: the note was escaped, then its cell again, so `a | b` split the row."""
    source = DataSource(id="hub:org/set_a:main@train", kind="hub", why="matches <task> *exactly*", score=0.5)
    check = DatasetCheck(name=source.id, format="sft", rows_in=10, rows_kept=8, note="kept a | b")
    plan = DataPlan(
        discovery=DiscoveryReport(target="arithmetic", status="offline", sources=(source,)),
        checks={source.id: {"sft": check}},
    )
    markdown = data_candidates_markdown(plan)
    table = markdown[markdown.index("| dataset") : markdown.index("\n\nOffered")]
    (row,) = rendered_cells(table)
    assert (row[0], row[4], row[-1]) == (source.id, "matches <task> *exactly*", "sft: 8/10 kept (kept a | b)")
