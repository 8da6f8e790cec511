"""Dataset discovery for a campaign's target: gather candidate training datasets, inspect them,
pin them, and rank them with the evidence for each.

Where candidates come from:
- the local catalog's datasets meant for the target (`INTERNFLOW_CATALOG`, cards `benchmark:`);
- the target's own training data (a task spec's `train_data:`), as `task:<name>:train`;
- datasets the user names (`CampaignConfig.datasets`: catalog names or `hub:owner/name[:config][@split]`);
- Hub search on queries derived from the target's name and description, plus the dataset names
  the literature stage's hints mention, each inspected through datasets-server.

The rank score (higher first), each term shown in the source's `why`:
  3 × vocabulary overlap (share of the sample prompts' content words that the target's prompts use)
  + layout fit (0.5 if it can train SFT, 0.25 each for GRPO and DPO)
  + 0.5 × size (log10 rows / 5, capped at 1) + 0.3 × popularity (log10 downloads / 6, capped at 1)
  + 0.1 for a permissive licence, − 0.1 for a non-commercial one
  + 0.5 when the data is declared for this target (its catalog card or its task spec).
Only the `hub_datasets` best Hub candidates are pinned (their commit sha resolved, which also
tells a gated one: skipped with a message).  Vetting (decontamination gate, quality checks) is
`internflow.data.vetting`, after loading.

The report is cached in the workspace per target and inputs; offline (or with the Hub down) it
says so and falls back to the local catalog and the task's own data, and a partial answer is
never cached as complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from internflow.benchmarks import Benchmark
from internflow.catalog import list_catalog
from internflow.data.discovery import HubCatalog, Inspection, LocalCatalog, methods_for
from internflow.data.hub import HubDatasetError, parse_hub_id, resolve_revision
from internflow.http import OfflineError, ServiceError
from internflow.schemas import ColumnMapping, DataSource, DiscoveryReport, Hint

__all__ = ["DiscoveryOptions", "content_words", "discover", "discovery_queries", "task_source"]

_WORD = re.compile(r"[a-z][a-z]{2,}")
_STOP = frozenset(
    {
        "the", "and", "for", "with", "that", "this", "from", "are", "was", "were",
        "what", "which", "who", "whom", "how", "many", "much", "then", "than", "there",
        "their", "they", "them", "you", "your", "its", "into", "onto", "each", "after",
        "before", "about", "answer", "answers", "question", "questions", "problem", "problems", "final", "number",
        "numbers", "step", "steps", "reasoning", "think", "end", "give", "result", "results", "following",
        "state", "task", "tasks", "set", "sets", "data", "dataset", "datasets", "user", "own",
        "file", "spec", "yaml", "yml", "json", "jsonl",
    }
)  # fmt: skip
NAMED = "named by the user"
_PERMISSIVE = ("apache", "mit", "bsd", "cc-by-4", "cc-by-3", "cc-by-sa", "cc0", "odc-by", "pddl", "unlicense")


def content_words(text: str) -> set[str]:
    """Lower-case words of 3+ letters, common function words and task boilerplate left out."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def discovery_queries(benchmark: Benchmark, hints: Iterable[Hint] = ()) -> tuple[str, ...]:
    """Hub search queries: the target's name, its first three content words of the description
    (the domain, e.g. 'grade', 'school', 'math'), and every dataset the literature names."""
    words = [w for w in _WORD.findall(benchmark.description.lower()) if w not in _STOP]
    named = [h.name for h in hints if h.kind == "dataset"]
    queries = [benchmark.name, *list(dict.fromkeys(words))[:3], *named]
    return tuple(dict.fromkeys(q.strip().lower() for q in queries if q.strip()))


class DiscoveryOptions:
    """What the campaign asks of discovery (from CampaignConfig): user-named datasets, column
    mapping overrides, how many Hub candidates to pin, how many to inspect per query."""

    def __init__(
        self,
        named: tuple[str, ...] = (),
        mappings: Mapping[str, ColumnMapping] | None = None,
        hub_datasets: int = 4,
        per_query: int = 8,
    ) -> None:
        self.named, self.mappings = named, dict(mappings or {})
        self.hub_datasets, self.per_query = hub_datasets, per_query

    def key(self) -> str:
        mapped = {k: v.model_dump() for k, v in sorted(self.mappings.items())}
        return json.dumps([list(self.named), mapped, self.hub_datasets, self.per_query])


def task_source(benchmark: Benchmark) -> DataSource | None:
    """The target's own training split (a task spec's train_data), when it has one."""
    if benchmark.train_data is None:
        return None
    items = benchmark.load("train")
    mapping = ColumnMapping(prompt="prompt", completion="completion", answer="answer")
    return DataSource(
        id=f"task:{benchmark.name}:train",
        kind="task",
        path=benchmark.train_data,
        rows=len(items),
        columns=("prompt", "completion", "answer"),
        mapping=mapping,
        format=mapping.format(),
        methods=methods_for(mapping),
        description=f"the task's own training data ({benchmark.train_data})",
        found_by=("task spec train_data",),
    )


def _rank(source: DataSource, sample: Iterable[Mapping], target: set[str], declared: bool) -> DataSource:
    if not source.usable:
        return source
    text = " ".join(str(row.get(c, "")) for row in sample for c in _prompt_columns(source))
    words = content_words(text)
    overlap = len(words & target) / len(words) if words else 0.0
    fit = 0.5 * ("sft" in source.methods) + 0.25 * ("grpo" in source.methods) + 0.25 * ("dpo" in source.methods)
    size = min(1.0, math.log10((source.rows or 0) + 1) / 5)
    popularity = min(1.0, math.log10((source.downloads or 0) + 1) / 6)
    licence = (source.license or "").lower()
    licence_term = 0.1 if licence.startswith(_PERMISSIVE) else (-0.1 if "-nc" in licence else 0.0)
    score = 3 * overlap + fit + 0.5 * size + 0.3 * popularity + licence_term + 0.5 * declared
    why = (
        f"vocabulary overlap {overlap:.2f}; feeds {'+'.join(source.methods) or 'nothing'}; "
        f"{source.rows if source.rows is not None else '?'} rows; {source.downloads or 0} downloads; "
        f"licence {source.license or 'unknown'}" + ("; declared for this target" if declared else "")
    )
    return source.model_copy(update={"score": round(score, 3), "why": why})


def _prompt_columns(source: DataSource) -> tuple[str, ...]:
    mapping = source.mapping
    if mapping is None:
        return ()
    return tuple(c for c in (mapping.prompt, mapping.input, mapping.messages, mapping.chosen) if c)


def discover(
    benchmark: Benchmark,
    cache_dir: Path,
    hints: Iterable[Hint] = (),
    options: DiscoveryOptions | None = None,
    hub: HubCatalog | None = None,
) -> DiscoveryReport:
    """Candidate training datasets for `benchmark`, ranked (see the module docstring); cached in
    `cache_dir` unless the answer was partial.  Never raises for the Hub being unreachable: the
    report's status and notes say what happened."""
    options = options or DiscoveryOptions()
    hints = tuple(hints)
    queries = discovery_queries(benchmark, hints)
    key = hashlib.sha256(json.dumps([benchmark.name, benchmark.definition, queries, options.key()]).encode())
    safe_name = re.sub(r"[^\w.-]+", "-", benchmark.name)
    cache = cache_dir / f"discovery-{safe_name}-{key.hexdigest()[:12]}.json"
    if cache.is_file():
        cached = DiscoveryReport.model_validate_json(cache.read_text())
        return cached.model_copy(update={"status": "cached"})

    target = content_words(" ".join(benchmark.prompt(item) for item in benchmark.load("test")))
    inspections: list[tuple[Inspection, bool]] = []
    local = LocalCatalog()
    for entry in list_catalog().values():
        if entry.benchmark == benchmark.name:
            inspections.append((local.inspect(entry.name), True))
    own = task_source(benchmark)
    if own is not None:
        inspections.append((Inspection(own, tuple(_task_sample(benchmark))), True))

    notes: list[str] = []
    status = "online"
    hub = hub or HubCatalog()
    wanted_hub = [name for name in options.named if name.startswith("hub:")]
    for name in options.named:
        if not name.startswith("hub:"):
            inspections.append((local.inspect(name), False))
    try:
        found = _search(hub, queries, options.per_query, notes)
        for name in wanted_hub:
            repo, config, split = parse_hub_id(name)
            hit = found[repo][0] if repo in found else DataSource(id=name, kind="hub", repo=repo)
            found[repo] = (hit.model_copy(update={"found_by": (*hit.found_by, NAMED)}), config, split)
        inspections += [(_inspect(hub, *entry, benchmark, notes), False) for entry in found.values()]
    except OfflineError as error:
        status = "offline"
        notes.append(f"Hub not searched: {error}; using the local catalog and the task's own data")
    except ServiceError as error:
        status = "partial"
        notes.append(f"Hub search failed: {error}; using what was found before it failed")

    ranked = [_rank(_override(i.source, options), i.sample, target, declared) for i, declared in inspections]
    ranked.sort(key=lambda s: (not s.usable, -s.score, s.id))
    ranked = _pin_best_hub(ranked, options.hub_datasets, notes)
    report = DiscoveryReport(
        target=benchmark.name,
        status=status,  # type: ignore[arg-type]  # one of the literals above
        queries=queries,
        sources=tuple(ranked),
        notes=tuple(notes),
    )
    if status == "online" and not any(s.status == "error" for s in ranked):
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(report.model_dump_json(indent=2))
    return report


def _task_sample(benchmark: Benchmark) -> list[dict[str, str]]:
    return [{"prompt": benchmark.prompt(item), "completion": item.answer} for item in benchmark.load("train")[:3]]


def _override(source: DataSource, options: DiscoveryOptions) -> DataSource:
    """The user's column mapping for this dataset, when given, replaces the inferred one."""
    mapping = options.mappings.get(source.id) or (options.mappings.get(f"hub:{source.repo}") if source.repo else None)
    if mapping is None or source.status not in ("candidate", "unmappable"):
        return source
    return source.model_copy(
        update={"mapping": mapping, "format": mapping.format(), "methods": methods_for(mapping), "status": "candidate",
                "note": f"{source.note}; column mapping given by the user".lstrip("; ")}
    )  # fmt: skip


def _search(
    hub: HubCatalog, queries: tuple[str, ...], per_query: int, notes: list[str]
) -> dict[str, tuple[DataSource, str | None, str]]:
    found: dict[str, tuple[DataSource, str | None, str]] = {}
    for query in queries:
        hits = hub.search(query, limit=per_query)
        notes.append(f"hub search {query!r}: {len(hits)} datasets")
        for hit in hits:
            assert hit.repo is not None
            if hit.repo in found:
                old = found[hit.repo][0]
                found[hit.repo] = (old.model_copy(update={"found_by": old.found_by + hit.found_by}), None, "train")
            else:
                found[hit.repo] = (hit, None, "train")
    return found


def _inspect(
    hub: HubCatalog, hit: DataSource, config: str | None, split: str, benchmark: Benchmark, notes: list[str]
) -> Inspection:
    """Inspect one search hit through datasets-server; a gated or failing one is kept with its reason."""
    assert hit.repo is not None
    if hit.status != "candidate":
        notes.append(f"hub:{hit.repo} skipped: {hit.note or hit.status}")
        return Inspection(hit)
    try:
        inspected = hub.inspect(hit.repo, split, config=config)
    except ServiceError as error:
        gated = error.status in (401, 403)
        status = "gated" if gated else "error"
        why = "gated: needs a token with access (HF_TOKEN)" if gated else f"inspection failed: {error.cause}"
        notes.append(f"hub:{hit.repo} skipped: {why}")
        return Inspection(hit.model_copy(update={"status": status, "note": why}))
    source = inspected.source.model_copy(
        update={
            "revision": hit.revision,
            "downloads": hit.downloads,
            "license": inspected.source.license or hit.license,
            "found_by": hit.found_by,
        }
    )
    if benchmark.test_split_of(hit.repo, source.config, source.split):
        note = f"split {source.split!r} is the target's test set"
        source = source.model_copy(update={"status": "invalid", "note": note})
    return Inspection(source, inspected.sample)


def _pin_best_hub(ranked: list[DataSource], keep: int, notes: list[str]) -> list[DataSource]:
    """Resolve the commit of the `keep` best usable Hub candidates, and of every one the user named
    (the revision every later read uses); the rest stay listed as evidence but are not offered.
    A 401/403 marks it gated."""
    pinned, out = 0, []
    for source in ranked:
        if source.kind != "hub" or not source.usable:
            out.append(source)
            continue
        asked = NAMED in source.found_by
        if pinned >= keep and not asked:
            out.append(source.model_copy(update={"status": "not_pinned", "note": f"ranked below the {keep} best"}))
            continue
        assert source.repo is not None
        try:
            info = resolve_revision(source.repo)
        except HubDatasetError as error:
            gated = "gated" in str(error)
            notes.append(f"{source.id} skipped: {error}")
            out.append(source.model_copy(update={"status": "gated" if gated else "error", "note": str(error)}))
            continue
        except ServiceError as error:
            notes.append(f"{source.id} not pinned: {error}")
            out.append(source.model_copy(update={"status": "error", "note": str(error)}))
            continue
        pinned += 0 if asked else 1
        out.append(source.model_copy(update={"revision": info.sha}))
    return out
