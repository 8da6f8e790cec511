"""Vetting and preparing training data.  Every source — the local catalog, the task's own training
data, a Hub dataset — is read the same way: rows mapped to one `Example` shape (rows that do not
fit are quarantined as `unmappable`, never dropped silently), then the decontamination gate
against the target's test prompts, then the quality checks, then the method's TRL format.

`screen_sources` gives each source's verdict per training method without writing anything (what
the planner may be offered); `prepare_training_data` writes one iteration's training mix.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from internflow.benchmarks import Benchmark
from internflow.catalog import CorruptDatasetError, get_entry, read_rows
from internflow.data.decontamination import ContaminationReport, DecontaminationConfig, EvalIndex
from internflow.data.discovery import LocalCatalog
from internflow.data.formats import (
    METHOD_FORMATS,
    Example,
    UnsupportedRowError,
    infer_mapping,
    to_example,
    to_trl,
    usable_for,
)
from internflow.data.hub import load_hub_rows
from internflow.data.length import token_lengths
from internflow.data.quality import QualityConfig, Quarantined, answer_check_for, check_rows
from internflow.files import write_atomic
from internflow.models import load_chat_tokenizer
from internflow.schemas import ColumnMapping, DatasetCheck, DatasetSource, DataSource, IterationParams, PreparedDataset
from internflow.training.data_check import needed_columns

__all__ = [
    "DataPaths",
    "SourceCheck",
    "TokenBudget",
    "dev_index",
    "eval_index",
    "mix_shares",
    "prepare_training_data",
    "resolve_sources",
    "screen_sources",
    "source_rows",
]


TokenBudget = tuple[str, int]  # (the model whose tokenizer measures rows, max_length in tokens)
DEFAULT_REWARDS: tuple[str, ...] = IterationParams.model_fields["reward_funcs"].default


@dataclass(frozen=True)
class DataPaths:
    """Where loaded rows are kept (workspace) and how many rows a Hub split may contribute."""

    rows_dir: Path  # Hub rows as JSONL, one file per (dataset, config, split, revision, budget)
    hf_cache_dir: Path  # datasets' own download cache
    row_budget: int = 20_000


@dataclass
class SourceCheck:
    source: DatasetSource
    check: DatasetCheck
    kept: list[Example]
    quarantined: list[Quarantined]


def eval_index(benchmark: Benchmark, config: DecontaminationConfig | None = None) -> EvalIndex:
    """The gate's index over the target's test prompts (as the model sees them)."""
    return EvalIndex((benchmark.prompt(item) for item in benchmark.load("test")), config or DecontaminationConfig())


def dev_index(benchmark: Benchmark, config: DecontaminationConfig | None = None) -> EvalIndex | None:
    """An index over the target's dev prompts, or None without a dev split: a training row that
    repeats one is quarantined (`dev_item`), so what iterations are chosen on is never trained on."""
    if not benchmark.dev_source:
        return None
    return EvalIndex((benchmark.prompt(item) for item in benchmark.load("dev")), config or DecontaminationConfig())


def resolve_sources(names: tuple[str, ...], sources: tuple[DataSource, ...]) -> list[DataSource]:
    """The sources `names` refer to: the campaign's discovered sources first, else the local
    catalog (what the iteration deployment run on its own, or an older parameter set, names)."""
    known = {s.id: s for s in sources}
    resolved = []
    for name in names:
        if name in known:
            resolved.append(known[name])
        elif name.startswith(("hub:", "task:")):
            raise ValueError(f"datasets: {name!r} is not among this campaign's vetted sources ({', '.join(known)})")
        else:
            resolved.append(LocalCatalog().inspect(name).source)
    return resolved


def source_rows(source: DataSource, benchmark: Benchmark, paths: DataPaths) -> tuple[list[dict[str, Any]], str, str]:
    """(rows, the file they were read from, its sha256) for any kind of source."""
    if source.kind == "hub":
        assert source.repo is not None and source.revision is not None, f"{source.id} was never pinned"
        rows, path = load_hub_rows(
            source.repo, source.config, source.split, source.revision, paths.rows_dir, paths.hf_cache_dir,
            paths.row_budget,
        )  # fmt: skip
        return rows, str(path), hashlib.sha256(path.read_bytes()).hexdigest()
    if source.kind == "task":
        rows = [
            {"prompt": benchmark.prompt(item), "completion": item.answer, "answer": item.answer}
            for item in benchmark.load("train")
        ]
        assert source.path is not None
        return rows, source.path, hashlib.sha256(Path(source.path).read_bytes()).hexdigest()
    path = Path(source.path) if source.path else get_entry(source.id).data_file
    rows, sha256 = read_rows(path)
    return rows, str(path), sha256


def _with_reference(example: Example, benchmark: Benchmark) -> Example:
    """A row without an explicit reference answer gets the one the target's extractor reads from
    its completion ('… The answer is 124.' → '124'), so rewards judge it the way the eval does.
    Not for preference pairs: a chosen answer is preferred, not verified."""
    if example.answer is not None or example.completion is None or example.rejected is not None:
        return example
    return dataclasses.replace(example, answer=benchmark.extract(example.completion_text))


def _reference_check(
    method: str, reward_funcs: tuple[str, ...], benchmark: Benchmark
) -> Callable[[Example], str | None]:
    """GRPO whose rewards take an `answer`: a row without one ('no_answer') or with one the benchmark
    cannot read ('unreadable_answer') would train with reward 0 whatever the model writes."""
    if method != "grpo" or "answer" not in needed_columns(method, reward_funcs, benchmark.ref):
        return lambda example: None

    def check(example: Example) -> str | None:
        if example.answer is None:
            return "no_answer"
        return "unreadable_answer" if benchmark.reference(example.answer) is None else None

    return check


@functools.lru_cache(maxsize=4)
def _chat_tokenizer(model: str) -> Any:
    return load_chat_tokenizer(model)


def _over_length(
    kept: list[tuple[str, Example, dict[str, Any]]], method: str, tokens: TokenBudget | None
) -> tuple[list[tuple[str, Example, dict[str, Any]]], list[Quarantined]]:
    """Rows over the recipe's max_length in the model's tokens, quarantined as `too_long`."""
    if tokens is None or not kept:
        return kept, []
    model, max_length = tokens
    lengths = token_lengths([example for _, example, _ in kept], _chat_tokenizer(model), method)
    fits = [row for row, length in zip(kept, lengths, strict=True) if length <= max_length]
    over = [
        Quarantined(where, "too_long", raw, f"{length} tokens > max_length {max_length}")
        for (where, _, raw), length in zip(kept, lengths, strict=True)
        if length > max_length
    ]
    return fits, over


@dataclass
class _Read:
    """A source's rows read once, whatever the method: its mapping, the examples, the rows that did
    not fit, and which prompts the test gate and the dev hold-out flag (the costly part)."""

    mapping: ColumnMapping
    examples: list[tuple[str, Example, dict[str, Any]]]
    unmappable: list[Quarantined]
    contaminated: set[int]
    dev_items: set[int]
    report: ContaminationReport


def _read(
    source: DataSource, rows: list[dict[str, Any]], where: list[str], gate: EvalIndex, dev: EvalIndex | None,
    benchmark: Benchmark,
) -> _Read:  # fmt: skip
    """`CorruptDatasetError` when no column mapping fits the dataset."""
    mapping = source.mapping or infer_mapping(rows[0] if rows else (), rows[:3])
    examples: list[tuple[str, Example, dict[str, Any]]] = []
    unmappable: list[Quarantined] = []
    for w, row in zip(where, rows, strict=True):
        try:
            examples.append((w, _with_reference(to_example(row, w, mapping), benchmark), row))
        except UnsupportedRowError as error:  # tool use, images: quarantined with the reason, never mangled
            unmappable.append(Quarantined(w, error.reason, row, str(error)))
        except CorruptDatasetError as error:  # a row that does not fit its dataset's layout
            unmappable.append(Quarantined(w, "unmappable", row, str(error)))
    contaminated = {id(ex) for _, ex, _ in examples if gate.is_contaminated(ex.prompt_text)}
    dev_items = set() if dev is None else {id(ex) for _, ex, _ in examples if dev.is_contaminated(ex.prompt_text)}
    report = ContaminationReport.judge(
        source.id, len(examples), [ex.prompt_text for _, ex, _ in examples if id(ex) in contaminated], gate.config
    )
    return _Read(mapping, examples, unmappable, contaminated, dev_items, report)


def _check(
    source: DataSource,
    rows: list[dict[str, Any]],
    path: str,
    sha256: str,
    method: str,
    gate: EvalIndex,
    quality: QualityConfig,
    benchmark: Benchmark,
    reward_funcs: tuple[str, ...] = DEFAULT_REWARDS,
    tokens: TokenBudget | None = None,
    dev: EvalIndex | None = None,
    read: _Read | None = None,
) -> SourceCheck:
    """One source vetted for one method; `read` reuses what an earlier method's check read."""
    record = DatasetSource(name=source.id, path=path, rows_used=0, sha256=sha256)
    where = [f"{path}:{n}" for n in range(1, len(rows) + 1)]
    try:
        read = read or _read(source, rows, where, gate, dev, benchmark)
    except CorruptDatasetError as error:
        quarantined = [Quarantined(w, "unmappable", row) for w, row in zip(where, rows, strict=True)]
        check = DatasetCheck(name=source.id, format="unknown", rows_in=len(rows), rows_kept=0, blocked=True,
                             rejected={"unmappable": len(rows)}, note=f"{error}: give a column mapping")  # fmt: skip
        return SourceCheck(record, check, [], quarantined)
    fmt = read.mapping.format()
    if not usable_for(fmt, method):
        note = f"{fmt} rows cannot train {method}: dataset skipped"
        quarantined = [Quarantined(w, "unusable_format", row) for w, row in zip(where, rows, strict=True)]
        check = DatasetCheck(name=source.id, format=fmt, rows_in=len(rows), rows_kept=0, blocked=True, note=note,
                             rejected={"unusable_format": len(rows)})  # fmt: skip
        return SourceCheck(record, check, [], quarantined)

    kept: list[Example] = []
    done = read  # narrowed for the closure below
    if done.report.blocked:
        quarantined = [Quarantined(w, "dataset_contaminated", row) for w, _, row in done.examples]
    else:
        reference = _reference_check(method, reward_funcs, benchmark)

        def skip(ex: Example) -> str | None:
            if id(ex) in done.contaminated:
                return "test_overlap"
            if id(ex) in done.dev_items:
                return "dev_item"  # the split iterations are chosen on is never trained on
            if method == "sft" and ex.completion is None:
                return "no_completion"  # a row of an answered layout that lacks its answer
            return reference(ex)

        result = check_rows(done.examples, quality, answer_check_for(benchmark.name), skip=skip)
        raw_of = {id(ex): raw for _, ex, raw in done.examples}
        fits, too_long = _over_length([(w, ex, raw_of[id(ex)]) for w, ex in result.kept], method, tokens)
        kept, quarantined = [ex for _, ex, _ in fits], result.quarantined + too_long
    quarantined = done.unmappable + quarantined
    check = DatasetCheck(
        name=source.id,
        format=fmt,
        mapping=done.mapping.describe(),
        rows_in=len(rows),
        rows_kept=len(kept),
        rejected=dict(Counter(q.reason for q in quarantined)),
        contaminated_rows=done.report.contaminated_rows,
        contamination_ratio=done.report.ratio,
        blocked=done.report.blocked,
        note=done.report.reason,
    )
    return SourceCheck(record, check, kept, quarantined)


def screen_sources(
    sources: list[DataSource],
    benchmark: Benchmark,
    paths: DataPaths,
    methods: tuple[str, ...],
    quality: QualityConfig | None = None,
    decontamination: DecontaminationConfig | None = None,
    reward_funcs: tuple[str, ...] = DEFAULT_REWARDS,
    tokens: TokenBudget | None = None,
) -> dict[str, dict[str, DatasetCheck]]:
    """source id → method → the gate's and quality checks' verdict, reading each source once and
    writing nothing but the Hub rows cache.  For GRPO (with rewards that judge an answer) a source
    whose rows carry no readable reference answer keeps no rows; with `tokens` (model, max_length),
    rows over the recipe's length in that model's tokens are not counted as kept."""
    gate, held_out = eval_index(benchmark, decontamination), dev_index(benchmark, decontamination)
    verdicts: dict[str, dict[str, DatasetCheck]] = {}
    for source in sources:
        rows, path, sha256 = source_rows(source, benchmark, paths)
        where = [f"{path}:{n}" for n in range(1, len(rows) + 1)]
        try:
            read: _Read | None = _read(source, rows, where, gate, held_out, benchmark)  # once for every method
        except CorruptDatasetError:
            read = None  # each method's check says unmappable
        verdicts[source.id] = {
            method: _check(
                source, rows, path, sha256, method, gate, quality or QualityConfig(), benchmark, reward_funcs,
                tokens, dev=held_out, read=read,
            ).check
            for method in methods
        }  # fmt: skip
    return verdicts


def mix_shares(total: int, weights: tuple[float, ...], available: list[int]) -> list[int]:
    """Rows to take from each dataset: `total` split by weight, capped by what each dataset has."""
    if any(w <= 0 for w in weights):
        raise ValueError(f"dataset_weights: each weight must be > 0, got {list(weights)}")
    shares = [int(total * w / sum(weights)) for w in weights]
    return [min(share, have) for share, have in zip(shares, available, strict=True)]


T = TypeVar("T")


def draw_shard(rows: list[T], size: int, shard: int, rng: random.Random) -> list[T]:
    """`size` rows of `rows` (at most all of them) for slice `shard`, advancing `rng` alike for every
    shard.  The rows are put in one seeded order: first `rng.sample(rows, size)` (shard 0, the draw
    every run made before shards existed), then the rows it left, shuffled (seeded by `rng`'s
    state); shard k is the k-th run of `size` rows of that order, wrapping round to its start.  So
    no shard repeats a row, and shards 0, 1, ... of one seed are disjoint until every row has been
    drawn once — provided the draw is the same (seed, rows kept, `size`); another row count or mix
    gives another order."""
    picked = rng.sample(range(len(rows)), size)  # the same draws as rng.sample(rows, size)
    if shard and len(picked) < len(rows):
        taken = set(picked)
        left = [i for i in range(len(rows)) if i not in taken]
        random.Random(hashlib.sha256(repr(rng.getstate()).encode()).hexdigest()).shuffle(left)
        order = picked + left
        picked = [order[(shard * size + i) % len(order)] for i in range(size)]
    return [rows[i] for i in picked]


def prepare_training_data(
    sources: list[DataSource],
    benchmark: Benchmark,
    paths: DataPaths,
    data_dir: Path,
    *,
    method: str,
    max_train_samples: int,
    seed: int,
    shard: int = 0,
    weights: tuple[float, ...] = (),
    quality: QualityConfig | None = None,
    decontamination: DecontaminationConfig | None = None,
    reward_funcs: tuple[str, ...] = DEFAULT_REWARDS,
    model: str | None = None,
    max_length: int | None = None,
) -> PreparedDataset:
    """Vet every source, mix the kept rows by weight (a blocked source's share goes to the others,
    so the gate never shrinks the training set), convert them to the method's TRL format and
    write `train-<fingerprint>.jsonl` and the quarantined rows with their reasons to `data_dir`.
    `model` and `max_length`: every row is measured in that model's tokens with its chat template
    and quarantined as `too_long` over `max_length` (what the trainer would drop or truncate).
    `shard`: which slice of each source's seeded shuffle is drawn (`draw_shard`)."""
    if method not in METHOD_FORMATS:
        raise ValueError(f"method: unknown method {method!r}; known: {', '.join(METHOD_FORMATS)}")
    if weights and len(weights) != len(sources):
        raise ValueError(f"dataset_weights: {len(weights)} weights for {len(sources)} datasets")
    gate, held_out = eval_index(benchmark, decontamination), dev_index(benchmark, decontamination)
    tokens = (model, max_length) if model and max_length else None
    checked = []
    for source in sources:
        rows, where, sha256 = source_rows(source, benchmark, paths)
        config = quality or QualityConfig()
        checked.append(
            _check(source, rows, where, sha256, method, gate, config, benchmark, reward_funcs, tokens, held_out)
        )

    rng = random.Random(seed)
    weights = weights or (1.0,) * len(sources)
    usable_at = [i for i, c in enumerate(checked) if not c.check.blocked]
    shares = [0] * len(checked)
    if usable_at:
        usable_weights = tuple(weights[i] for i in usable_at)
        available = [len(checked[i].kept) for i in usable_at]
        for i, share in zip(usable_at, mix_shares(max_train_samples, usable_weights, available), strict=True):
            shares[i] = share
    mixed: list[dict[str, Any]] = []
    used: list[DatasetSource] = []
    for c, share in zip(checked, shares, strict=True):
        chosen = draw_shard(c.kept, share, shard, rng)
        mixed.extend(to_trl(example, method, c.source.path) for example in chosen)
        used.append(c.source.model_copy(update={"rows_used": len(chosen)}))
    rng.shuffle(mixed)  # one dataset cannot crowd the start of training
    rejected = sum((Counter(c.check.rejected) for c in checked), Counter())
    if not mixed:
        blocked = [c.check.name for c in checked if c.check.blocked]
        raise ValueError(
            f"datasets: no usable training rows left in {[s.id for s in sources]} "
            f"(rejected: {dict(rejected)}; blocked: {blocked or 'none'}; usable datasets: {len(usable_at)})"
        )

    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in mixed)
    fingerprint = hashlib.sha256(f"{method}\n{body}".encode()).hexdigest()[:16]
    path = data_dir / f"train-{fingerprint}.jsonl"
    write_atomic(path, body)  # iterations running at the same time may write the same mix
    quarantine_path = data_dir / f"quarantine-{fingerprint}.jsonl"
    write_atomic(
        quarantine_path,
        "".join(
            json.dumps(
                {"dataset": c.check.name, "where": q.where, "reason": q.reason, "row": q.row}
                | ({"detail": q.detail} if q.detail else {}),
                ensure_ascii=False,
                default=str,
            )
            + "\n"
            for c in checked
            for q in c.quarantined
        ),
    )
    return PreparedDataset(
        path=str(path),
        format=METHOD_FORMATS[method],  # type: ignore[arg-type]  # the three literals, by construction
        rows=len(mixed),
        sources=tuple(used),
        rejected=dict(rejected),
        fingerprint=fingerprint,
        checks=tuple(c.check for c in checked),
        quarantine_path=str(quarantine_path),
    )
