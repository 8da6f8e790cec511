"""Dataset preparation: the iteration's chosen datasets — local catalog, the task's own data or
pinned Hub datasets — vetted (decontamination gate against the target's test prompts, quality
checks), converted to the TRL format the training method needs, mixed by weight and written.

The library does the work on a DatasetRequest (`internflow.data.prepare`); this stage runs it and
publishes the `dataset` artifact: per dataset the column mapping, rows in and used, rejections by
reason, the contamination ratio and the verdict.  Every rejected row is in the quarantine file.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from internflow.data.prepare import DatasetRequest, prepare
from internflow.markdown import cell
from internflow.schemas import PreparedDataset

__all__ = ["prepare_dataset"]


# Not cached: it is cheap and must see edits to the catalog files; the train task's cache key
# includes the prepared data's fingerprint instead.
@task(name="dataset", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def prepare_dataset(request: DatasetRequest) -> PreparedDataset:
    """Vet, mix and write the request's training data (`internflow.data.prepare`); returns the
    PreparedDataset (file, format, rows, per-dataset checks, quarantine file) and publishes the
    `dataset` artifact.  Raises ValueError when no usable row is left."""
    prepared = prepare(request)
    _publish(prepared)
    return prepared


def _publish(prepared: PreparedDataset) -> None:
    lines = [
        "| dataset | format | columns | rows in | used | rejected | contaminated | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    used = {s.name: s.rows_used for s in prepared.sources}
    for c in prepared.checks:
        rejected = ", ".join(f"{reason}: {n}" for reason, n in sorted(c.rejected.items())) or "none"
        verdict = "**blocked**: " + cell(c.note) if c.blocked else cell(c.note)
        lines.append(
            f"| {cell(c.name)} | {c.format} | {cell(c.mapping)} | {c.rows_in} | {used.get(c.name, 0)} "
            f"| {cell(rejected)} "
            f"| {c.contaminated_rows} ({c.contamination_ratio:.1%}) | {verdict} |"
        )
    total = ", ".join(f"{reason}: {count}" for reason, count in sorted(prepared.rejected.items())) or "none"
    for c in prepared.checks:
        log = get_run_logger().warning if c.blocked or c.rejected else get_run_logger().info
        log("dataset %s: %d of %d rows kept; rejected %s; %s", c.name, c.rows_kept, c.rows_in, c.rejected, c.note)
    create_markdown_artifact(
        key="dataset",
        markdown=f"## Training data ({prepared.format})\n\n{prepared.rows} rows → `{prepared.path}`\n\n"
        + "\n".join(lines)
        + f"\n\nRejected rows: {total}; each is in `{prepared.quarantine_path}` with its reason.\n",
        description="Training mix, quality checks and the decontamination gate",
    )
