"""Training data values: how a dataset's columns map to roles, the pinned sources discovery finds
and vets, and the prepared rows the train stage reads."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from internflow.schemas.base import Frozen

__all__ = [
    "HUB_ID",
    "ColumnMapping",
    "DataPlan",
    "DataSource",
    "DatasetCheck",
    "DatasetSource",
    "DiscoveryReport",
    "PreparedDataset",
    "RowFormat",
]

# A Hub dataset named as training data: hub:owner/name[:config][@split].
HUB_ID = re.compile(r"^hub:(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<config>[\w.-]+))?(?:@(?P<split>[\w.-]+))?$")

# What a dataset's rows can be read as (internflow.data.formats): a conversation, a prompt with
# the answer to imitate, a preference pair, or a prompt alone (with a reference answer for rewards).
RowFormat = Literal["messages", "prompt_completion", "preference", "prompt_only"]


class ColumnMapping(Frozen):
    """Which column of a dataset plays which role.  Inferred from the columns and first rows
    (`internflow.data.formats.infer_mapping`) or given by the user for any other layout."""

    prompt: str | None = Field(None, description="The user turn: prompt, question, problem, instruction, query...")
    input: str | None = Field(None, description="Extra context appended to the prompt (Alpaca's 'input').")
    completion: str | None = Field(None, description="The answer to imitate: completion, response, output, solution...")
    chosen: str | None = Field(None, description="Preference pairs: the preferred answer (or whole conversation).")
    rejected: str | None = Field(None, description="Preference pairs: the dispreferred answer.")
    answer: str | None = Field(
        None,
        description="The reference answer a judge or GRPO reward compares with (default: the completion's "
        "final answer).",
    )
    messages: str | None = Field(
        None, description="A whole conversation: OpenAI-style role/content or ShareGPT from/value turns."
    )

    @model_validator(mode="after")
    def _something_to_read(self) -> ColumnMapping:
        if not (self.messages or self.prompt or (self.chosen and self.rejected)):
            raise ValueError("a column mapping needs 'messages', 'prompt', or 'chosen' and 'rejected'")
        return self

    def format(self) -> RowFormat:
        if self.messages:
            return "messages"
        if self.chosen and self.rejected:
            return "preference"
        return "prompt_completion" if self.completion else "prompt_only"

    def describe(self) -> str:
        """'prompt←question, completion←answer' — what the artifact and the planner show."""
        roles = self.model_dump(exclude_none=True)
        return ", ".join(f"{role}←{column}" for role, column in roles.items())


class DataSource(Frozen):
    """A training dataset a campaign may use, pinned: where its rows come from, how its columns map,
    and why discovery ranked it where it did.  `id` is what `IterationParams.datasets` names."""

    id: str = Field(description="Catalog name, 'hub:owner/name:config@split' or 'task:<name>:train'.")
    kind: Literal["local", "hub", "task"]
    repo: str | None = Field(None, description="Hub dataset repository.")
    config: str | None = None
    split: str = "train"
    revision: str | None = Field(None, description="Hub commit sha the rows are read at (pinned at discovery).")
    path: str | None = Field(None, description="Local JSONL file (catalog and task-spec data).")
    columns: tuple[str, ...] = Field((), description="The dataset's columns, as inspected.")
    mapping: ColumnMapping | None = Field(None, description="How the columns map to roles (inferred or given).")
    format: RowFormat | None = None
    methods: tuple[str, ...] = Field((), description="Training methods its layout can feed.")
    rows: int | None = Field(None, description="Rows in the split, as the Hub or the file says.")
    license: str | None = None
    downloads: int | None = None
    description: str = ""
    score: float = Field(0.0, description="Discovery's rank score (higher first).")
    why: str = Field("", description="The evidence behind the score.")
    found_by: tuple[str, ...] = Field((), description="Queries or sources that found it.")
    status: Literal["candidate", "gated", "invalid", "unmappable", "not_pinned", "error"] = "candidate"
    note: str = ""

    @property
    def usable(self) -> bool:
        return self.status == "candidate"


class DiscoveryReport(Frozen):
    """What dataset discovery searched and found for a campaign's target, best first."""

    target: str
    status: Literal["online", "cached", "offline", "partial"]
    queries: tuple[str, ...] = ()
    sources: tuple[DataSource, ...] = ()
    notes: tuple[str, ...] = Field((), description="What each service answered, what was skipped and why.")

    def usable(self) -> tuple[DataSource, ...]:
        return tuple(s for s in self.sources if s.usable)


class DataPlan(Frozen):
    """The training data a campaign may use: discovery's report, and per training method the
    vetted source ids (best first) that the planner may choose from."""

    discovery: DiscoveryReport
    sources: tuple[DataSource, ...] = Field((), description="Every usable source, best first.")
    by_method: dict[str, tuple[str, ...]] = Field(default_factory=dict, description="method → vetted source ids.")
    default_datasets: tuple[str, ...] = Field((), description="What the starting recipe trains on.")
    checks: dict[str, dict[str, DatasetCheck]] = Field(
        default_factory=dict, description="source id → method → the gate's and quality checks' verdict."
    )

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sources)


class DatasetSource(Frozen):
    name: str
    path: str
    rows_used: int
    sha256: str


class DatasetCheck(Frozen):
    """What the quality checks and the decontamination gate did to one dataset."""

    name: str
    format: str
    mapping: str = Field("", description="How its columns were read, e.g. 'prompt←question, completion←answer'.")
    rows_in: int
    rows_kept: int
    rejected: dict[str, int] = Field(default_factory=dict)
    contaminated_rows: int = 0
    contamination_ratio: float = 0.0
    blocked: bool = Field(False, description="The whole dataset was kept out of training.")
    note: str = ""


class PreparedDataset(Frozen):
    """Training rows in the TRL conversational format the method needs, written as JSONL."""

    path: str
    format: Literal["conversational_prompt_completion", "conversational_preference", "conversational_prompt_only"] = (
        "conversational_prompt_completion"
    )
    rows: int
    sources: tuple[DatasetSource, ...]
    rejected: dict[str, int] = Field(default_factory=dict, description="Dropped rows by reason.")
    fingerprint: str
    checks: tuple[DatasetCheck, ...] = ()
    quarantine_path: str | None = Field(None, description="JSONL of every rejected row with its reason.")
