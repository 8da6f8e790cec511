"""Dataset row layouts: detect which one a dataset uses, read rows into one `Example` shape, and
write them out in the TRL format a training method needs.

Layouts understood (TRL's dataset formats, plus the plain question/answer of reasoning-gym):

- `messages`: a conversation ending in an assistant turn
- `prompt_completion`: `prompt` + `completion` (strings or message lists)
- `question_answer`: `question` + `answer`
- `preference`: `prompt` + `chosen` + `rejected` (strings or message lists; TRL's implicit-prompt
  form, `chosen`/`rejected` as whole conversations without `prompt`, too)
- `prompt_only`: `prompt` alone, optionally with an `answer` a reward function checks against

Any other columns work through a `ColumnMapping` naming which column plays which role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from internflow.catalog import CorruptDatasetError

__all__ = [
    "METHOD_FORMATS",
    "ColumnMapping",
    "Example",
    "RowFormat",
    "UnsupportedRowError",
    "detect_format",
    "to_example",
    "to_trl",
    "usable_for",
]

RowFormat = Literal["messages", "prompt_completion", "question_answer", "preference", "prompt_only"]
Message = dict[str, str]

# What each training method reads: TRL's SFTTrainer, DPOTrainer and GRPOTrainer formats.
METHOD_FORMATS: dict[str, str] = {
    "sft": "conversational_prompt_completion",
    "dpo": "conversational_preference",
    "grpo": "conversational_prompt_only",
}

# Which row formats can feed which method: a preference pair trains SFT on its chosen answer; a
# prompt-only row has nothing to imitate or to prefer.
_USABLE: dict[str, set[str]] = {
    "sft": {"messages", "prompt_completion", "question_answer", "preference"},
    "dpo": {"preference"},
    "grpo": {"messages", "prompt_completion", "question_answer", "preference", "prompt_only"},
}


class ColumnMapping(BaseModel):
    """Which column holds what, for datasets whose columns have other names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str
    completion: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    answer: str | None = None

    def format(self) -> RowFormat:
        if self.chosen and self.rejected:
            return "preference"
        return "prompt_completion" if self.completion else "prompt_only"


@dataclass(frozen=True)
class Example:
    """One row, whatever its layout: the prompt turns and what may follow them."""

    prompt: list[Message]
    completion: list[Message] | None = None
    rejected: list[Message] | None = None
    answer: str | None = None
    # Plain text of the prompt (system turns aside) and of the completion, computed once: the gate,
    # the duplicate checks and the answer check all read them.
    prompt_text: str = field(init=False, repr=False, compare=False)
    completion_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prompt = "\n".join(m.get("content", "") for m in self.prompt if m.get("role") != "system")
        completion = "\n".join(m.get("content", "") for m in self.completion or [])
        object.__setattr__(self, "prompt_text", prompt)  # frozen: set once, here
        object.__setattr__(self, "completion_text", completion)


def detect_format(columns: Iterable[str]) -> RowFormat:
    """The layout a set of column names implies; a clear error listing the known layouts otherwise."""
    cols = columns if isinstance(columns, Mapping | set) else set(columns)  # `in` is all it needs
    if "messages" in cols:
        return "messages"
    if "chosen" in cols and "rejected" in cols:
        return "preference"
    if "prompt" in cols and "completion" in cols:
        return "prompt_completion"
    if "question" in cols and "answer" in cols:
        return "question_answer"
    if "prompt" in cols:
        return "prompt_only"
    raise CorruptDatasetError(
        f"unrecognised columns {sorted(columns)}; expected 'messages', 'prompt'+'completion', "
        "'question'+'answer', 'prompt'+'chosen'+'rejected' or 'prompt' (with a column mapping for others)"
    )


class UnsupportedRowError(CorruptDatasetError):
    """A well-formed row this pipeline does not train on (images, tool calls): the dataset stage
    quarantines it under `reason` instead of refusing the whole dataset."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# Parts of a message's content that are text (OpenAI's and Hugging Face's typed content lists).
_TEXT_PARTS = {"text", "input_text", "output_text"}
# Roles and keys of tool use: definitions, calls and results.
_TOOL_ROLES = {"tool", "function", "ipython"}


def _is_parts(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(p, Mapping) and "type" in p for p in value)


def _content(value: Any, where: str, column: str) -> str:
    """A message's content as text: a string; None (a tool-call turn's) as empty, never 'None'; a list
    of typed parts as its text parts joined, as chat templates render them.  A non-text part
    (image, audio, file) makes the row unsupported."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if _is_parts(value):
        kinds = sorted({str(part["type"]) for part in value} - _TEXT_PARTS)
        if kinds:
            raise UnsupportedRowError(
                "non_text_content", f"{where}: column {column!r} has {', '.join(kinds)} content: only text is trained"
            )
        return "".join(str(part.get("text") or "") for part in value)
    raise CorruptDatasetError(f"{where}: column {column!r}: a message's content must be text or a list of text parts")


def _message(message: Mapping[str, Any], where: str, column: str) -> Message:
    role = str(message["role"])
    if role in _TOOL_ROLES or message.get("tool_calls") or message.get("function_call"):
        raise UnsupportedRowError(
            "tool_calls",
            f"{where}: column {column!r} has tool calls or tool results: tool use is not trained "
            "(internflow's benchmarks judge text answers)",
        )
    return {"role": role, "content": _content(message.get("content"), where, column)}


def refuse_tools(row: Mapping[str, Any], where: str) -> None:
    """A row defining tools (TRL's `tools` column) is quarantined as `tool_calls`, never stripped silently."""
    if row.get("tools"):
        raise UnsupportedRowError("tool_calls", f"{where}: column 'tools' defines tools: tool use is not trained")


def _turns(value: Any, role: str, where: str, column: str) -> list[Message]:
    if value is None or isinstance(value, str | int | float) and not isinstance(value, bool) or _is_parts(value):
        return [{"role": role, "content": _content(value, where, column)}]
    if isinstance(value, list) and all(isinstance(m, Mapping) and "role" in m for m in value):
        return [_message(m, where, column) for m in value]
    raise CorruptDatasetError(f"{where}: column {column!r} must be text or a list of messages")


def _split_conversation(value: Any, where: str, column: str) -> tuple[list[Message], list[Message]]:
    turns = _turns(value, "assistant", where, column)
    if not turns or turns[-1]["role"] != "assistant":
        raise CorruptDatasetError(f"{where}: {column!r} must end with an assistant turn")
    return turns[:-1], turns[-1:]


def to_example(row: Mapping[str, Any], where: str, mapping: ColumnMapping | None = None) -> Example:
    """Read one row (its layout detected from its columns, or given by `mapping`).  Raises
    UnsupportedRowError (with a reason) for rows with tool use or non-text content."""
    refuse_tools(row, where)
    if mapping is not None:
        missing = [c for c in mapping.model_dump().values() if c is not None and c not in row]
        if missing:
            raise CorruptDatasetError(f"{where}: column mapping names {missing}, absent from {sorted(row)}")
        row = {role: row[column] for role, column in mapping.model_dump().items() if column is not None}
    try:
        fmt = detect_format(row)
    except CorruptDatasetError as error:
        raise CorruptDatasetError(f"{where}: {error}") from None
    answer = str(row["answer"]) if row.get("answer") is not None and fmt != "question_answer" else None
    if fmt == "messages":
        prompt, completion = _split_conversation(row["messages"], where, "messages")
        return Example(prompt, completion, answer=answer)
    if fmt == "question_answer":
        reply = _turns(row["answer"], "assistant", where, "answer")
        return Example(
            _turns(row["question"], "user", where, "question"),
            reply,
            answer="\n".join(m["content"] for m in reply) or None,
        )
    if fmt == "preference":
        if "prompt" in row:
            prompt = _turns(row["prompt"], "user", where, "prompt")
            chosen = _turns(row["chosen"], "assistant", where, "chosen")
            rejected = _turns(row["rejected"], "assistant", where, "rejected")
        else:  # implicit prompt: both conversations share every turn but the last
            prompt, chosen = _split_conversation(row["chosen"], where, "chosen")
            _, rejected = _split_conversation(row["rejected"], where, "rejected")
        return Example(prompt, chosen, rejected, answer=answer)
    prompt = _turns(row["prompt"], "user", where, "prompt")
    if fmt == "prompt_completion":
        return Example(prompt, _turns(row["completion"], "assistant", where, "completion"), answer=answer)
    return Example(prompt, answer=answer)


def to_trl(example: Example, method: str, where: str) -> dict[str, Any]:
    """The row as the method's TRL trainer reads it (conversational form)."""
    if method not in METHOD_FORMATS:
        raise ValueError(f"method: unknown method {method!r}; known: {', '.join(METHOD_FORMATS)}")
    if method == "sft":
        if example.completion is None:
            raise CorruptDatasetError(f"{where}: SFT needs a completion; this row is prompt-only")
        return {"prompt": example.prompt, "completion": example.completion}
    if method == "dpo":
        if example.completion is None or example.rejected is None:
            raise CorruptDatasetError(f"{where}: DPO needs 'chosen' and 'rejected' answers")
        return {"prompt": example.prompt, "chosen": example.completion, "rejected": example.rejected}
    row: dict[str, Any] = {"prompt": example.prompt}
    if example.answer is not None:
        row["answer"] = example.answer  # the reward function's reference
    return row


def usable_for(fmt: RowFormat, method: str) -> bool:
    return fmt in _USABLE.get(method, set())
