"""Dataset preparation: the iteration's chosen datasets — local catalog, the task's own data or
pinned Hub datasets — vetted (decontamination gate against the target's test prompts, quality
checks), converted to the TRL format the training method needs, mixed by weight and written.

The library does the work (`internflow.data.vetting`); this stage resolves the names, runs it and
publishes the `dataset` artifact: per dataset the column mapping, rows in and used, rejections by
reason, the contamination ratio and the verdict.  Every rejected row is in the quarantine file.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from internflow.benchmarks import get_benchmark
from internflow.catalog import CorruptDatasetError
from internflow.data.decontamination import DecontaminationConfig
from internflow.data.formats import to_example
from internflow.data.quality import QualityConfig
from internflow.data.vetting import DEFAULT_REWARDS, DataPaths, prepare_training_data, resolve_sources
from internflow.markdown import cell
from internflow.schemas import DataSource, PreparedDataset
from internflow.workspace import Workspace

__all__ = ["data_paths", "prepare_dataset", "to_prompt_completion"]

Message = dict[str, str]


def to_prompt_completion(row: dict, where: str) -> tuple[list[Message], list[Message]]:
    """Any supported row layout → (prompt messages, completion messages)."""
    example = to_example(row, where)
    if example.completion is None:
        raise CorruptDatasetError(f"{where}: a prompt-only row has no completion to train on")
    return example.prompt, example.completion


def data_paths(workspace: Workspace, row_budget: int = 20_000) -> DataPaths:
    return DataPaths(rows_dir=workspace.data_dir / "hub", hf_cache_dir=workspace.hf_cache_dir, row_budget=row_budget)


# Not cached: it is cheap and must see edits to the catalog files; the train task's cache key
# includes the prepared data's fingerprint instead.
@task(name="dataset", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def prepare_dataset(
    datasets: tuple[str, ...],
    max_train_samples: int,
    seed: int,
    benchmark: str,
    workspace: Workspace,
    method: str = "sft",
    weights: tuple[float, ...] = (),
    quality: QualityConfig | None = None,
    decontamination: DecontaminationConfig | None = None,
    sources: tuple[DataSource, ...] = (),
    row_budget: int = 20_000,
    reward_funcs: tuple[str, ...] = DEFAULT_REWARDS,
    model: str | None = None,
    max_length: int | None = None,
) -> PreparedDataset:
    """`datasets` are source ids: the campaign's discovered `sources` (Hub ids are read at their
    pinned revision), or local catalog names.  `model` and `max_length`: rows over `max_length`
    in that model's tokens (with its chat template) are quarantined as `too_long`."""
    prepared = prepare_training_data(
        resolve_sources(datasets, sources),
        get_benchmark(benchmark),
        data_paths(workspace, row_budget),
        workspace.data_dir,
        method=method,
        max_train_samples=max_train_samples,
        seed=seed,
        weights=weights,
        quality=quality,
        decontamination=decontamination,
        reward_funcs=reward_funcs,
        model=model,
        max_length=max_length,
    )
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
