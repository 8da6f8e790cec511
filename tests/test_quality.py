"""Row quality checks: empty, over-long, duplicates, near duplicates, wrong answers."""

from __future__ import annotations

from internflow.data.formats import to_example
from internflow.data.quality import QualityConfig, answer_check_for, check_rows

Q = "State the final answer to the following arithmetic problem: {} ="


def _rows(raw: list[dict]):
    return [(f"d.jsonl:{i}", to_example(row, f"d.jsonl:{i}"), row) for i, row in enumerate(raw, start=1)]


def test_each_bad_row_is_quarantined_with_its_reason_and_place() -> None:
    raw = [
        {"question": Q.format("2 + 3"), "answer": "5"},
        {"question": Q.format("2 + 3"), "answer": "5"},  # exact duplicate
        {"question": Q.format("2 + 3").upper() + "  ", "answer": "5"},  # same prompt, re-formatted
        {"question": Q.format("2 + 4"), "answer": ""},
        {"question": Q.format("2 + 5"), "answer": "x" * 100},
        {"question": Q.format("40 + 2"), "answer": "41"},  # wrong
        {"question": Q.format("40 - 2"), "answer": "38"},  # a different problem, not a near duplicate
    ]
    result = check_rows(_rows(raw), QualityConfig(max_chars=120), answer_check_for("arithmetic"))
    assert [(q.where, q.reason) for q in result.quarantined] == [
        ("d.jsonl:2", "duplicate"),
        ("d.jsonl:3", "near_duplicate"),
        ("d.jsonl:4", "empty"),
        ("d.jsonl:5", "too_long"),
        ("d.jsonl:6", "wrong_answer"),
    ]
    assert [where for where, _ in result.kept] == ["d.jsonl:1", "d.jsonl:7"]
    assert result.rejected == {"duplicate": 1, "near_duplicate": 1, "empty": 1, "too_long": 1, "wrong_answer": 1}
    assert result.quarantined[4].row == raw[5]


def test_the_answer_check_reads_worked_answers_prompt_only_answers_and_chosen_answers() -> None:
    check = answer_check_for("arithmetic")
    assert check is not None
    worked = {
        "messages": [
            {"role": "user", "content": Q.format("7 + 8")},
            {"role": "assistant", "content": "7 + 8 = 15. The answer is 15."},
        ]
    }
    assert check(to_example(worked, "x")) is True
    assert check(to_example({"prompt": Q.format("7 + 8"), "answer": "16"}, "x")) is False
    pair = {"prompt": Q.format("7 + 8"), "chosen": "The answer is 14.", "rejected": "The answer is 15."}
    assert check(to_example(pair, "x")) is False
    assert check(to_example({"prompt": "Name a colour.", "completion": "red"}, "x")) is None  # cannot tell


def test_answer_checks_can_be_switched_off_and_benchmarks_without_one_are_not_checked() -> None:
    raw = [{"question": Q.format("1 + 1"), "answer": "3"}]
    assert check_rows(_rows(raw), QualityConfig(check_answers=False), answer_check_for("arithmetic")).rejected == {}
    assert answer_check_for("family-mc") is None
    assert len(check_rows(_rows(raw), QualityConfig(), None).kept) == 1


def test_a_wrong_row_does_not_shadow_a_later_right_one() -> None:
    raw = [{"question": Q.format("1 + 1"), "answer": "3"}, {"question": Q.format("1 + 1"), "answer": "2"}]
    result = check_rows(_rows(raw), QualityConfig(), answer_check_for("arithmetic"))
    assert [q.reason for q in result.quarantined] == ["wrong_answer"] and len(result.kept) == 1


def test_rows_differing_only_in_symbols_operators_scripts_or_emoji_are_not_near_duplicates() -> None:
    distinct = [
        "Is 2 < 3?", "Is 2 > 3?", "Is 2 ≤ 3?",  # comparison signs
        "Compute 2 ^ 3", "Compute 2 % 3", "Compute a & b", "Compute a | b",  # operators
        "Round 3.5 + 1", "Round 35 + 1", "Expand x² + 1", "Expand x2 + 1",  # decimals, superscripts
        "Price in €5", "Price in £5", "Evaluate f(x)", "Evaluate f[x]",
        "Translate 你好吗", "Translate 您好吗",  # one character apart
        "अनुवाद करें: दिन", "अनुवाद करें: दान",  # Devanagari words differing only in a vowel sign
        "I ❤️ cats", "I 😡 cats",  # emoji
    ]  # fmt: skip
    result = check_rows(_rows([{"prompt": p, "completion": "ok"} for p in distinct]), QualityConfig(), None)
    assert result.rejected == {} and len(result.kept) == len(distinct)


def test_case_spacing_and_sentence_punctuation_still_make_near_duplicates() -> None:
    raw = [{"prompt": "What is 2 + 3?", "completion": "5"}, {"prompt": "  what IS 2 + 3 .", "completion": "five"}]
    assert [q.reason for q in check_rows(_rows(raw), QualityConfig(), None).quarantined] == ["near_duplicate"]
