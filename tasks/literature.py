"""Literature stage: what others tried for the campaign's goal, so the planner can cite it.

arXiv and Hugging Face Papers search, a bounded walk of the citation graph, and the method
sections of the top papers (internflow/literature/).  Searching is a nicety, not a requirement:
this stage never fails an iteration; offline, it says so and serves what the caches hold.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from internflow.literature.arxiv_search import DEFAULT_TIMEOUT_S, arxiv_client, search_arxiv
from internflow.literature.survey import Services, survey
from internflow.markdown import cell
from internflow.schemas import LiteratureReport, LiteratureRequest

__all__ = ["DEFAULT_TIMEOUT_S", "arxiv_client", "literature_markdown", "search_arxiv", "survey_literature"]


def literature_markdown(report: LiteratureReport) -> str:
    """What was read, why each paper ranked, and the hints found, with their passages."""
    head = f"# Literature: {cell(report.query, 1000)}\n\n**Status:** {report.status}. {report.note}\n\n"
    services = "".join(f"- **{name}**: {cell(note, 300)}\n" for name, note in report.sources.items())
    rows = [
        f"| {rank} | [{cell(p.title, 1000)}]({p.url}) | {p.published} | {p.score:.2f} | {cell(p.why, 200)} "
        f"| {cell(p.summary, 200)} |"
        for rank, p in enumerate(report.papers, start=1)
    ]
    table = (
        "| # | Paper | Published | Score | Why it ranked | Summary |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
        if rows
        else "No papers."
    )
    hints = [
        f"| {h.kind} | {h.name} | {cell(h.value, 1000)} | {h.paper} §{cell(h.section, 60)} | {cell(h.passage, 300)} |"
        for h in report.hints
    ]
    hint_table = (
        "\n\n## Hints\n\n| kind | name | value | from | passage |\n|---|---|---|---|---|\n" + "\n".join(hints)
        if hints
        else ""
    )
    return head + (f"## Sources\n\n{services}\n" if services else "") + table + hint_table + "\n"


# retries=1: survey() never raises, so a retry only covers a failed artifact upload.  NO_CACHE:
# the disk caches already dedupe queries, and an "offline" result must not be replayed once online.
@task(name="literature", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def survey_literature(request: LiteratureRequest, services: Services | None = None) -> LiteratureReport:
    """Search arXiv, Hugging Face Papers and the citation graph for the campaign's goal; returns the
    ranked papers and the hints they give (method, hyper-parameter, dataset) and publishes the
    `literature` artifact. Offline is a status in the report, not an error."""
    report = survey(request, services)
    logger = get_run_logger()
    log = logger.warning if report.status == "offline" else logger.info
    log(
        "literature %s: %d papers, %d hints for %r. %s",
        report.status,
        len(report.papers),
        len(report.hints),
        report.query,
        report.note,
    )
    create_markdown_artifact(
        key="literature",  # artifact keys: lowercase letters, digits and dashes only
        markdown=literature_markdown(report),
        description=f"{len(report.papers)} papers, {len(report.hints)} hints ({report.status})",
    )
    return report
