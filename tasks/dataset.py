"""Dataset preparation: read catalog datasets, gate them against the eval set, check row quality,
convert to the TRL format the training method needs, mix with weights, write.

The decontamination gate runs whatever the planner chose: a row whose prompt repeats an eval
prompt is blocked, and a dataset with too many such rows is blocked whole.  Every rejected row is
quarantined with its reason in a JSONL next to the training file, and counted in the artifact.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from internflow.benchmarks import get_benchmark
from internflow.catalog import CorruptDatasetError, get_entry, read_rows
from internflow.data.decontamination import ContaminationReport, DecontaminationConfig, EvalIndex
from internflow.data.formats import METHOD_FORMATS, Example, detect_format, to_example, to_trl, usable_for
from internflow.data.quality import QualityConfig, Quarantined, answer_check_for, check_rows
from internflow.markdown import cell
from internflow.schemas import DatasetCheck, DatasetSource, PreparedDataset
from internflow.workspace import Workspace

__all__ = ["mix_shares", "prepare_dataset", "screen_datasets", "to_prompt_completion"]

Message = dict[str, str]


def to_prompt_completion(row: dict, where: str) -> tuple[list[Message], list[Message]]:
    """Any supported row layout → (prompt messages, completion messages)."""
    example = to_example(row, where)
    if example.completion is None:
        raise CorruptDatasetError(f"{where}: a prompt-only row has no completion to train on")
    return example.prompt, example.completion


def mix_shares(total: int, weights: tuple[float, ...], available: list[int]) -> list[int]:
    """Rows to take from each dataset: `total` split by weight, capped by what each dataset has."""
    if any(w <= 0 for w in weights):
        raise ValueError(f"dataset_weights: each weight must be > 0, got {list(weights)}")
    shares = [int(total * w / sum(weights)) for w in weights]
    return [min(share, have) for share, have in zip(shares, available, strict=True)]


def _eval_index(benchmark_name: str, config: DecontaminationConfig) -> EvalIndex:
    benchmark = get_benchmark(benchmark_name)
    return EvalIndex((benchmark.prompt(item) for item in benchmark.load("test")), config)


def _check_dataset(
    name: str, method: str, gate: EvalIndex, quality: QualityConfig, benchmark: str
) -> tuple[DatasetSource, DatasetCheck, list[Example], list[Quarantined]]:
    entry = get_entry(name)
    rows, sha256 = read_rows(entry.data_file)
    source = DatasetSource(name=name, path=str(entry.data_file), rows_used=0, sha256=sha256)
    fmt = detect_format(rows[0]) if rows else "prompt_completion"
    where = [f"{entry.data_file}:{n}" for n in range(1, len(rows) + 1)]
    if not usable_for(fmt, method):
        note = f"{fmt} rows cannot train {method}: dataset skipped"
        quarantined = [Quarantined(w, "unusable_format", row) for w, row in zip(where, rows, strict=True)]
        check = DatasetCheck(name=name, format=fmt, rows_in=len(rows), rows_kept=0, blocked=True, note=note)
        return source, check.model_copy(update={"rejected": {"unusable_format": len(rows)}}), [], quarantined

    examples = [(w, to_example(row, w), row) for w, row in zip(where, rows, strict=True)]
    contaminated = {id(ex) for _, ex, _ in examples if gate.is_contaminated(ex.prompt_text)}
    report = ContaminationReport.judge(
        name, len(examples), [ex.prompt_text for _, ex, _ in examples if id(ex) in contaminated], gate.config
    )
    kept: list[Example] = []
    if report.blocked:
        quarantined = [Quarantined(w, "dataset_contaminated", row) for w, _, row in examples]
    else:
        skip = lambda ex: "test_overlap" if id(ex) in contaminated else None  # noqa: E731
        result = check_rows(examples, quality, answer_check_for(benchmark), skip=skip)
        kept, quarantined = [ex for _, ex in result.kept], result.quarantined
    check = DatasetCheck(
        name=name,
        format=fmt,
        rows_in=len(rows),
        rows_kept=len(kept),
        rejected=dict(Counter(q.reason for q in quarantined)),
        contaminated_rows=report.contaminated_rows,
        contamination_ratio=report.ratio,
        blocked=report.blocked,
        note=report.reason,
    )
    return source, check, kept, quarantined


def screen_datasets(
    names: tuple[str, ...],
    benchmark: str,
    method: str = "sft",
    quality: QualityConfig | None = None,
    decontamination: DecontaminationConfig | None = None,
) -> dict[str, DatasetCheck]:
    """The gate's and the quality checks' verdict on each dataset, without writing anything: lets
    a planner leave blocked datasets out of its options (about a second for the bundled catalog)."""
    gate = _eval_index(benchmark, decontamination or DecontaminationConfig())
    return {name: _check_dataset(name, method, gate, quality or QualityConfig(), benchmark)[1] for name in names}


# Not cached: it is cheap and must see edits to the catalog files; the train task's cache key
# includes the prepared data's fingerprint instead.
@task(name="dataset", cache_policy=NO_CACHE)
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
) -> PreparedDataset:
    if method not in METHOD_FORMATS:
        raise ValueError(f"method: unknown method {method!r}; known: {', '.join(METHOD_FORMATS)}")
    if weights and len(weights) != len(datasets):
        raise ValueError(f"dataset_weights: {len(weights)} weights for {len(datasets)} datasets")
    gate = _eval_index(benchmark, decontamination or DecontaminationConfig())
    checked = [_check_dataset(name, method, gate, quality or QualityConfig(), benchmark) for name in datasets]

    # Shares by weight (equal by default), then shuffle the mix: one dataset cannot crowd out the others.
    # A blocked dataset's share goes to the others, so the gate never shrinks the training set.
    rng = random.Random(seed)
    usable = [c for c in checked if not c[1].blocked]
    weights = weights or (1.0,) * len(datasets)
    shares = [0] * len(checked)
    if usable:
        usable_at = [i for i, c in enumerate(checked) if not c[1].blocked]
        usable_shares = mix_shares(max_train_samples, tuple(weights[i] for i in usable_at), [len(c[2]) for c in usable])
        for i, share in zip(usable_at, usable_shares, strict=True):
            shares[i] = share
    mixed: list[dict] = []
    sources: list[DatasetSource] = []
    for (source, _, kept, _), share in zip(checked, shares, strict=True):
        chosen = rng.sample(kept, share)
        mixed.extend(to_trl(example, method, source.path) for example in chosen)
        sources.append(source.model_copy(update={"rows_used": len(chosen)}))
    rng.shuffle(mixed)
    rejected = sum((Counter(check.rejected) for _, check, _, _ in checked), Counter())
    if not mixed:
        blocked = [c.name for _, c, _, _ in checked if c.blocked]
        raise ValueError(
            f"datasets: no usable training rows left in {list(datasets)} "
            f"(rejected: {dict(rejected)}; blocked: {blocked or 'none'}; usable datasets: {len(usable)})"
        )

    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in mixed)
    fingerprint = hashlib.sha256(f"{method}\n{body}".encode()).hexdigest()[:16]
    path = workspace.data_dir / f"train-{fingerprint}.jsonl"
    path.write_text(body, encoding="utf-8")
    quarantine_path = workspace.data_dir / f"quarantine-{fingerprint}.jsonl"
    quarantine_path.write_text(
        "".join(
            json.dumps({"dataset": c.name, "where": q.where, "reason": q.reason, "row": q.row}, ensure_ascii=False)
            + "\n"
            for _, c, _, quarantined in checked
            for q in quarantined
        ),
        encoding="utf-8",
    )
    prepared = PreparedDataset(
        path=str(path),
        format=METHOD_FORMATS[method],  # type: ignore[arg-type]  # the three literals, by construction
        rows=len(mixed),
        sources=tuple(sources),
        rejected=dict(rejected),
        fingerprint=fingerprint,
        checks=tuple(check for _, check, _, _ in checked),
        quarantine_path=str(quarantine_path),
    )
    _publish(prepared)
    return prepared


def _publish(prepared: PreparedDataset) -> None:
    lines = [
        "| dataset | format | rows in | used | rejected | contaminated | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    used = {s.name: s.rows_used for s in prepared.sources}
    for c in prepared.checks:
        rejected = ", ".join(f"{reason}: {n}" for reason, n in sorted(c.rejected.items())) or "none"
        verdict = "**blocked**: " + cell(c.note) if c.blocked else cell(c.note)
        lines.append(
            f"| {cell(c.name)} | {c.format} | {c.rows_in} | {used.get(c.name, 0)} | {cell(rejected)} "
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
