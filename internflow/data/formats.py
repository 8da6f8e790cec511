"""Dataset row layouts: infer which column plays which role, read rows into one `Example` shape,
and write them out in the TRL format a training method needs.

`infer_mapping` reads a dataset's columns (and, for conversations, its first rows) and returns a
`ColumnMapping`.  Layouts it recognises, in order:

- a conversation column: `messages` (role/content) or ShareGPT `conversations` (from/value),
  ending in an assistant turn
- preference pairs: `chosen` + `rejected`, with `prompt` or as whole conversations (TRL's
  implicit-prompt form)
- a prompt and the answer to imitate: `prompt`/`completion`, `prompt`/`response`,
  `question`/`answer`, `problem`/`solution` (MATH: `\\boxed{}`), `instruction`/`input`/`output`
  (Alpaca), `query`/`response`, and the plain `prompt`/`answer` of custom datasets
- a prompt alone (`prompt`, `question`, `problem`), optionally with an `answer` for rewards

A separate `answer` column is the reference a judge or reward compares with; otherwise the
reference is the completion's final answer (`final_answer`: GSM8K's `#### 72`, `\\boxed{...}`).
Any other columns work through a `ColumnMapping` given by the user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from internflow.benchmarks.answers import last_boxed
from internflow.catalog import CorruptDatasetError
from internflow.schemas import ColumnMapping, RowFormat

__all__ = [
    "METHOD_FORMATS",
    "ColumnMapping",
    "Example",
    "RowFormat",
    "UnsupportedRowError",
    "detect_format",
    "final_answer",
    "infer_mapping",
    "to_example",
    "to_prompt_completion",
    "to_trl",
    "usable_for",
]

Message = dict[str, str]

# What each training method reads: TRL's SFTTrainer, DPOTrainer and GRPOTrainer formats.
METHOD_FORMATS: dict[str, str] = {
    "sft": "conversational_prompt_completion",
    "dpo": "conversational_preference",
    "grpo": "conversational_prompt_only",
}

# Which row formats can feed which method: a preference pair trains SFT on its chosen answer; a
# prompt-only row has nothing to imitate or to prefer.  GRPO reads the prompt of any layout (its
# rewards also need a reference answer: checked per row by the dataset stage).
_USABLE: dict[str, set[str]] = {
    "sft": {"messages", "prompt_completion", "preference"},
    "dpo": {"preference"},
    "grpo": {"messages", "prompt_completion", "preference", "prompt_only"},
}

# Column names per role, most specific first.  Pairs are tried in order: the first whose two
# columns are both present wins (so `problem`/`solution` beats a `problem`/`answer` reading).
_CONVERSATION_COLUMNS = ("messages", "conversations", "conversation", "chat", "dialogue", "dialog")
_PROMPT_COMPLETION_PAIRS = (
    ("prompt", "completion"),
    ("prompt", "response"),
    ("instruction", "output"),
    ("instruction", "response"),
    ("question", "answer"),
    ("problem", "solution"),
    ("query", "response"),
    ("question", "solution"),
    ("problem", "answer"),
    ("prompt", "answer"),
    ("input", "output"),
    ("prompt", "output"),
)
_PROMPT_ALONE = ("prompt", "question", "problem", "instruction", "query")
_SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
    "bing": "assistant", "bard": "assistant", "model": "assistant", "system": "system", "tool": "tool",
    "function": "tool", "observation": "tool",
}  # fmt: skip
_KNOWN_LAYOUTS = (
    "'messages' or ShareGPT 'conversations', 'prompt'+'chosen'+'rejected', 'prompt'+'completion', "
    "'prompt'+'response', 'instruction'+'input'+'output', 'question'+'answer', 'problem'+'solution', "
    "'prompt'+'answer' or a lone 'prompt' (give a column mapping for others)"
)


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


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(turn, Mapping) for turn in value)


def infer_mapping(columns: Iterable[str], sample: Iterable[Mapping[str, Any]] = ()) -> ColumnMapping:
    """The column mapping a dataset's columns imply (see the module docstring for the layouts);
    `sample` (its first rows) tells a conversation column from a text one.  `CorruptDatasetError`
    listing the known layouts when none fits."""
    cols = list(columns)
    present = set(cols)
    first = next(iter(sample), None)
    answer = "answer" if "answer" in present else None
    for column in _CONVERSATION_COLUMNS:
        if column in present and (first is None or _is_conversation(first.get(column))):
            return ColumnMapping(messages=column, answer=answer)
    if "chosen" in present and "rejected" in present:
        prompt = next((c for c in _PROMPT_ALONE if c in present), None)
        return ColumnMapping(prompt=prompt, chosen="chosen", rejected="rejected", answer=answer)
    for prompt, completion in _PROMPT_COMPLETION_PAIRS:
        if prompt in present and completion in present:
            extra = "input" if prompt == "instruction" and "input" in present else None
            # An `answer` column is the reference, also when it is the completion itself.
            return ColumnMapping(prompt=prompt, input=extra, completion=completion, answer=answer)
    prompt = next((c for c in _PROMPT_ALONE if c in present), None)
    if prompt is not None:
        return ColumnMapping(prompt=prompt, answer=answer)
    raise CorruptDatasetError(f"unrecognised columns {sorted(cols)}; expected {_KNOWN_LAYOUTS}")


def detect_format(columns: Iterable[str], sample: Iterable[Mapping[str, Any]] = ()) -> RowFormat:
    """The row format a set of columns implies (`infer_mapping(...).format()`)."""
    return infer_mapping(columns, sample).format()


_HASHES = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def final_answer(text: str) -> str | None:
    """The final answer a worked solution marks: after GSM8K's `####`, else the last `\\boxed{}`
    (nested braces allowed); None when it marks none (the benchmark's own extractor decides then)."""
    hashes = _HASHES.search(text)
    if hashes:
        return hashes.group(1).strip()
    boxed = last_boxed(text)
    return None if boxed is None else boxed.strip()


def _sharegpt(value: Any) -> Any:
    """ShareGPT turns ({'from': 'human', 'value': ...}) as role/content messages; others unchanged."""
    if not _is_conversation(value) or not all("from" in turn and "value" in turn for turn in value):
        return value
    return [{"role": _SHAREGPT_ROLES.get(str(t["from"]).lower(), str(t["from"])), "content": t["value"]} for t in value]


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
    """Read one row through `mapping` (inferred from the row's own columns when not given).
    `CorruptDatasetError` naming `where` when the row does not fit; `UnsupportedRowError` (with a
    reason) for rows with tool use or non-text content."""
    refuse_tools(row, where)
    if mapping is None:
        try:
            mapping = infer_mapping(row, [row])
        except CorruptDatasetError as error:
            raise CorruptDatasetError(f"{where}: {error}") from None
    roles = mapping.model_dump(exclude_none=True)
    # A row may lack its reference answer (rewards and answer checks then say so per row); every
    # other mapped column must be there.
    missing = [column for role, column in roles.items() if column not in row and column != mapping.answer]
    if missing:
        raise CorruptDatasetError(f"{where}: column mapping names {missing}, absent from {sorted(row)}")
    if mapping.answer is not None and mapping.answer not in row:
        row = {**row, mapping.answer: None}
    answer = None if mapping.answer is None or row[mapping.answer] is None else _reference(row[mapping.answer])
    fmt = mapping.format()
    if mapping.messages:
        prompt, completion = _split_conversation(_sharegpt(row[mapping.messages]), where, mapping.messages)
        return Example(prompt, completion, answer=answer or final_answer(_text_of(completion)))
    if fmt == "preference":
        assert mapping.chosen and mapping.rejected  # by format()
        if mapping.prompt:
            prompt = _turns(_sharegpt(row[mapping.prompt]), "user", where, mapping.prompt)
            chosen = _turns(_sharegpt(row[mapping.chosen]), "assistant", where, mapping.chosen)
            rejected = _turns(_sharegpt(row[mapping.rejected]), "assistant", where, mapping.rejected)
        else:  # implicit prompt: both conversations share every turn but the last
            prompt, chosen = _split_conversation(_sharegpt(row[mapping.chosen]), where, mapping.chosen)
            _, rejected = _split_conversation(_sharegpt(row[mapping.rejected]), where, mapping.rejected)
        return Example(prompt, chosen, rejected, answer=answer)
    assert mapping.prompt  # by the mapping's validator
    prompt = _turns(_sharegpt(row[mapping.prompt]), "user", where, mapping.prompt)
    if mapping.input and str(row[mapping.input] or "").strip():  # Alpaca: the input follows the instruction
        prompt[-1] = {**prompt[-1], "content": f"{prompt[-1]['content']}\n\n{row[mapping.input]}"}
    if mapping.completion is None or row[mapping.completion] is None:  # nothing to imitate in this row
        return Example(prompt, answer=answer)
    completion = _turns(_sharegpt(row[mapping.completion]), "assistant", where, mapping.completion)
    return Example(prompt, completion, answer=answer or final_answer(_text_of(completion)))


def to_prompt_completion(row: Mapping[str, Any], where: str) -> tuple[list[Message], list[Message]]:
    """Any supported row layout → (prompt messages, completion messages); `CorruptDatasetError`
    naming `where` for a prompt-only row (nothing to train on) or one that does not fit."""
    example = to_example(row, where)
    if example.completion is None:
        raise CorruptDatasetError(f"{where}: a prompt-only row has no completion to train on")
    return example.prompt, example.completion


def _reference(value: Any) -> str:
    """A reference answer cell as text: a worked answer becomes the final answer it marks."""
    text = value if isinstance(value, str) else str(value)
    return final_answer(text) or text.strip()


def _text_of(turns: list[Message]) -> str:
    return "\n".join(str(turn.get("content", "")) for turn in turns)


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
