"""Row layouts: detection, column mappings, conversion to each method's TRL format."""

from __future__ import annotations

import pytest

from internflow.catalog import CorruptDatasetError
from internflow.data.formats import (
    ColumnMapping,
    UnsupportedRowError,
    detect_format,
    final_answer,
    infer_mapping,
    to_example,
    to_trl,
    usable_for,
)

USER = {"role": "user", "content": "1 + 1 ="}
RIGHT = {"role": "assistant", "content": "2"}
WRONG = {"role": "assistant", "content": "3"}


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["messages"], "messages"),
        (["prompt", "completion"], "prompt_completion"),
        (["question", "answer"], "prompt_completion"),
        (["problem", "solution"], "prompt_completion"),
        (["instruction", "input", "output"], "prompt_completion"),
        (["prompt", "chosen", "rejected"], "preference"),
        (["chosen", "rejected"], "preference"),
        (["prompt", "answer"], "prompt_completion"),
        (["prompt"], "prompt_only"),
    ],
)
def test_each_layout_is_detected_from_its_columns(columns: list[str], expected: str) -> None:
    assert detect_format(columns) == expected


def test_unknown_columns_name_the_place_and_every_known_layout() -> None:
    with pytest.raises(CorruptDatasetError) as caught:
        to_example({"text": "1 + 1 = 2"}, "d.jsonl:3")
    message = str(caught.value)
    assert message.startswith("d.jsonl:3: unrecognised columns ['text']")
    assert "'prompt'+'chosen'+'rejected'" in message and "column mapping" in message


def test_plain_preference_rows_become_conversational_dpo_rows() -> None:
    example = to_example({"prompt": "1 + 1 =", "chosen": "2", "rejected": "3"}, "x:1")
    assert to_trl(example, "dpo", "x:1") == {"prompt": [USER], "chosen": [RIGHT], "rejected": [WRONG]}
    assert to_trl(example, "sft", "x:1") == {"prompt": [USER], "completion": [RIGHT]}  # SFT on the chosen answer


def test_implicit_prompt_preference_rows_split_off_the_shared_turns() -> None:
    example = to_example({"chosen": [USER, RIGHT], "rejected": [USER, WRONG]}, "x:1")
    assert (example.prompt, example.completion, example.rejected) == ([USER], [RIGHT], [WRONG])


def test_prompt_only_rows_cannot_train_sft() -> None:
    example = to_example({"prompt": [USER]}, "x:7")
    assert to_trl(example, "grpo", "x:7") == {"prompt": [USER]}
    with pytest.raises(CorruptDatasetError, match="x:7: SFT needs a completion"):
        to_trl(example, "sft", "x:7")
    assert usable_for("prompt_only", "grpo") and not usable_for("prompt_only", "sft")
    assert not usable_for("prompt_completion", "dpo") and usable_for("preference", "dpo")


def test_plain_prompt_answer_rows_train_sft_on_the_answer_and_keep_it_for_the_reward() -> None:
    example = to_example({"prompt": [USER], "answer": 2}, "x:7")
    assert to_trl(example, "sft", "x:7") == {"prompt": [USER], "completion": [RIGHT]}
    assert to_trl(example, "grpo", "x:7") == {"prompt": [USER], "answer": "2"}


def test_question_answer_rows_give_grpo_their_answer() -> None:
    assert to_trl(to_example({"question": "1 + 1 =", "answer": 2}, "x:1"), "grpo", "x:1") == {
        "prompt": [USER],
        "answer": "2",
    }


def test_a_column_mapping_reads_arbitrary_columns() -> None:
    mapping = ColumnMapping(prompt="problem", completion="solution")
    example = to_example({"problem": "1 + 1 =", "solution": "2", "source": "x"}, "x:1", mapping)
    assert (example.prompt, example.completion) == ([USER], [RIGHT])
    preference = ColumnMapping(prompt="q", chosen="good", rejected="bad")
    assert preference.format() == "preference"
    assert to_example({"q": "1 + 1 =", "good": "2", "bad": "3"}, "x:2", preference).rejected == [WRONG]


def test_a_mapping_naming_a_missing_column_is_a_clear_error() -> None:
    with pytest.raises(CorruptDatasetError, match=r"x:4: column mapping names \['solution'\]"):
        to_example({"problem": "1 + 1 ="}, "x:4", ColumnMapping(prompt="problem", completion="solution"))


def test_a_message_column_of_the_wrong_type_is_named() -> None:
    with pytest.raises(CorruptDatasetError, match="x:5: column 'prompt' must be text or a list of messages"):
        to_example({"prompt": {"oops": 1}}, "x:5")


def test_an_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: sft, dpo, grpo"):
        to_trl(to_example({"prompt": "x", "completion": "y"}, "x:1"), "ppo", "x:1")


LAYOUTS = [
    ({"instruction": "Add.", "input": "1 + 1", "output": "2"},
     {"prompt": "instruction", "input": "input", "completion": "output"}),
    ({"problem": "1 + 1?", "solution": "So \\boxed{2}.", "level": 1}, {"prompt": "problem", "completion": "solution"}),
    ({"prompt": "1 + 1?", "response": "2"}, {"prompt": "prompt", "completion": "response"}),
    ({"query": "1 + 1?", "response": "2"}, {"prompt": "query", "completion": "response"}),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
     {"messages": "conversations"}),
    ({"problem": "1 + 1?", "solution": "1 + 1 = 2", "answer": "2"},
     {"prompt": "problem", "completion": "solution", "answer": "answer"}),
]  # fmt: skip


@pytest.mark.parametrize(("row", "mapping"), LAYOUTS)
def test_the_column_mapping_is_inferred_for_the_layouts_public_datasets_use(row: dict, mapping: dict) -> None:
    assert infer_mapping(row, [row]) == ColumnMapping(**mapping)


def test_alpaca_input_follows_the_instruction_and_an_empty_input_adds_nothing() -> None:
    example = to_example({"instruction": "Add these.", "input": "1 + 1", "output": "2"}, "x:1")
    assert example.prompt == [{"role": "user", "content": "Add these.\n\n1 + 1"}]
    assert to_example({"instruction": "Say 2.", "input": "", "output": "2"}, "x:2").prompt_text == "Say 2."


def test_sharegpt_turns_become_role_content_messages() -> None:
    row = {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "1 + 1 ="},
                             {"from": "gpt", "value": "2"}]}  # fmt: skip
    example = to_example(row, "x:1")
    assert example.prompt == [{"role": "system", "content": "Be brief."}, USER] and example.completion == [RIGHT]


def test_a_text_column_named_conversation_is_not_taken_for_a_conversation() -> None:
    row = {"conversation": "A chat log as plain text", "question": "q?", "answer": "a"}
    assert infer_mapping(row, [row]) == ColumnMapping(prompt="question", completion="answer", answer="answer")


@pytest.mark.parametrize(
    ("solution", "reference"),
    [
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
        ("The sum is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("first \\boxed{1}, then \\boxed{2}", "2"),
        ("no marked answer here", None),
    ],
)
def test_the_reference_is_the_final_answer_a_worked_solution_marks(solution: str, reference: str | None) -> None:
    assert final_answer(solution) == reference
    if reference is not None:
        assert to_example({"question": "q", "solution": solution}, "x:1").answer == reference


def test_message_content_as_typed_parts_becomes_its_text_not_a_python_repr() -> None:
    parts = [{"type": "text", "text": "1 + 1 "}, {"type": "text", "text": "="}]
    row = {
        "messages": [
            {"role": "user", "content": parts},
            {"role": "assistant", "content": [{"type": "text", "text": "2"}]},
        ]
    }
    example = to_example(row, "x:1")
    assert to_trl(example, "sft", "x:1") == {"prompt": [USER], "completion": [RIGHT]}
    assert to_example({"prompt": parts, "completion": "2"}, "x:2").prompt == [USER]  # a column of parts alone


def test_a_non_text_content_part_makes_the_row_unsupported_with_its_reason() -> None:
    image = [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}, {"type": "text", "text": "What is it?"}]
    with pytest.raises(UnsupportedRowError, match="x:3: column 'messages' has image_url content") as caught:
        to_example({"messages": [{"role": "user", "content": image}, RIGHT]}, "x:3")
    assert caught.value.reason == "non_text_content"


TOOL_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 1}}}],
}


@pytest.mark.parametrize(
    "row",
    [
        {"messages": [USER, TOOL_CALL, {"role": "tool", "content": "2"}, RIGHT]},
        {"messages": [USER, RIGHT], "tools": [{"type": "function", "function": {"name": "add"}}]},
        {"prompt": [USER, TOOL_CALL], "completion": [RIGHT]},
    ],
    ids=["tool-call-and-result", "tools-column", "call-in-prompt"],
)
def test_tool_call_rows_are_unsupported_with_a_reason_never_none_text(row: dict) -> None:
    with pytest.raises(UnsupportedRowError, match="x:8: column '(messages|tools|prompt)'") as caught:
        to_example(row, "x:8")
    assert caught.value.reason == "tool_calls"


def test_null_content_is_empty_text_not_none() -> None:
    example = to_example({"messages": [{"role": "system", "content": None}, USER, RIGHT]}, "x:1")
    assert example.prompt[0] == {"role": "system", "content": ""}
    assert to_example({"prompt": "1 + 1 =", "answer": None}, "x:2").answer is None
