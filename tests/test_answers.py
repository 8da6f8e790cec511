"""The one answer normaliser: numbers and option letters as models and datasets write them, read
the same way by evaluation (bundled and Hub benchmarks, task specs) and by GRPO rewards."""

from __future__ import annotations

import pytest

from internflow.benchmarks import BENCHMARKS, get_benchmark, render_multiple_choice
from internflow.benchmarks.answers import (
    UnreadableAnswerError,
    choice_extractor,
    extract_choice,
    extract_number,
    numbers_equal,
    read_choice,
    read_number,
)
from internflow.benchmarks.posttrainbench import POSTTRAINBENCH, _gsm8k_item, _mmlu_item


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is 1,234.", "1234"),
        ("It costs $1,250.50 in all.", "1250.5"),
        ("The temperature fell to \u22125 degrees.", "-5"),
        ("They sold 4,000 tickets", "4000"),
        ("The answer is: **2,500**!", "2500"),
        ("1,000,000", "1000000"),
    ],
)
def test_output_with_thousands_separator_currency_or_unicode_minus_is_read_whole(output: str, expected: str) -> None:
    assert extract_number(output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("so 8 * 9 = 72\n#### 72", "72"),
        ("It costs $5.00.", "5"),
        ("hence \\boxed{12}", "12"),
        ("72, in total", "72"),
        ("the values are 1,2,3", "3"),  # not thousands groups: three numbers
        ("\\boxed{1,234} is the total", "1234"),
    ],
)
def test_answer_forms_that_were_already_right_stay_right(output: str, expected: str) -> None:
    assert extract_number(output) == expected


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("4,000", "4000"),
        ("$1,250.50", "1250.5"),
        ("\u22125", "-5"),
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
        ("\\boxed{070}", "70"),
        ("12.", "12"),
        (4000, "4000"),
        ("about 5", None),
        ("72 apples", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_a_reference_is_read_as_one_number_or_refused(reference: object, expected: str | None) -> None:
    assert read_number(reference) == expected


def test_reference_with_thousands_separator_4_000_is_judged() -> None:
    assert numbers_equal(extract_number("They sold 4,000 tickets.") or "", "4,000")
    assert numbers_equal("4000.0", "4,000") and not numbers_equal("4", "4,000")


def test_gsm8k_answers_of_a_thousand_and_more_are_judged_right() -> None:
    gsm8k = POSTTRAINBENCH["gsm8k"]
    item = _gsm8k_item({"question": "How many?", "answer": "600 + 634 = 1,234\n#### 1,234"}, 0)
    assert item.answer == "1234"
    for output in ("The answer is 1,234.", "That makes $1,234.00", "#### 1,234"):
        extracted = gsm8k.extract(output)
        assert extracted is not None and gsm8k.judge(extracted, item.answer), output
    below_zero = _gsm8k_item({"question": "Change?", "answer": "#### -5"}, 1)
    assert gsm8k.judge(gsm8k.extract("The change is \u22125.") or "", below_zero.answer)


def test_a_gsm8k_row_whose_answer_is_not_a_number_is_refused_naming_the_row() -> None:
    with pytest.raises(UnreadableAnswerError, match="openai/gsm8k test row 7: answer 'about five'"):
        _gsm8k_item({"question": "q", "answer": "about five"}, 7)


@pytest.mark.parametrize("output", ["The answer is **B**", "**B**", "**B) green**", "Answer: **(B)**", "\\boxed{B}"])
@pytest.mark.parametrize("benchmark", ["family-mc", "mmlu", "gpqa-main"])
def test_a_choice_in_markdown_bold_is_read(benchmark: str, output: str) -> None:
    assert get_benchmark(benchmark).extract(output) == "B"


def test_choice_letters_are_not_read_from_words() -> None:
    ten = choice_extractor(10)
    assert ten("I think it is C.") == "C"  # 'I' is an option of a ten-way item, and a pronoun here
    assert ten("A dog is not an option; the answer is J") == "J"
    assert extract_choice("The answer is a grandson.") is None
    assert extract_choice("Let's check option A: wrong. The answer is (C).") == "C"


def test_five_options_with_answer_index_4_keep_the_fifth_option() -> None:
    choices = ("red", "green", "blue", "white", "black")
    assert read_choice(4, choices) == "E" and read_choice("E", choices) == "E" and read_choice("black", choices) == "E"
    assert "E) black" in render_multiple_choice("Which?", choices)
    with pytest.raises(UnreadableAnswerError, match="index 5 is out of range for 5 choices"):
        read_choice(5, choices)
    with pytest.raises(UnreadableAnswerError, match="'F' names option 6 but the row has 5 choices"):
        read_choice("F", choices)


def test_ten_options_as_in_mmlu_pro_are_rendered_and_read() -> None:
    choices = tuple(f"option {n}" for n in range(10))
    prompt = render_multiple_choice("Which?", choices)
    assert "J) option 9" in prompt and "I) option 8" in prompt
    assert _mmlu_item({"question": "Which?", "choices": list(choices), "answer": 9}, 0).answer == "J"
    assert choice_extractor(10)("The answer is J.") == "J"
    with pytest.raises(ValueError, match="11 options; at most 10"):
        render_multiple_choice("Which?", (*choices, "one more"))


def test_an_mmlu_row_whose_answer_is_out_of_range_is_refused_naming_the_row() -> None:
    with pytest.raises(UnreadableAnswerError, match="cais/mmlu test row 3: answer: index 4 is out of range"):
        _mmlu_item({"question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": 4}, 3)


def test_an_answer_that_is_both_an_option_text_and_another_index_is_refused() -> None:
    with pytest.raises(UnreadableAnswerError, match="both the text of option B and index 2"):
        read_choice("2", ("1", "2", "3", "4"))
    assert read_choice("4", ("3", "4", "5", "6")) == "B"  # only the text reading exists


def test_grpo_reward_reads_a_gsm8k_worked_reference() -> None:
    from internflow.training.rewards import get_reward_funcs

    worked = "Weng earns 12 / 60 = 0.2 per minute.\n#### 72"
    for benchmark in ("gsm8k", "arithmetic"):
        (exact,) = get_reward_funcs(["exact_answer"], benchmark)
        scores = exact(completions=["So 72 in all. The answer is 72.", "The answer is 71."], answer=[worked, worked])
        assert scores == [1.0, 0.0], benchmark


def test_the_reward_and_the_evaluation_read_references_alike() -> None:
    from internflow.training.rewards import get_reward_funcs

    (exact,) = get_reward_funcs(["exact_answer"], "family-mc")
    assert exact(completions=["**B) green**", "The answer is C"], answer=["b", "B"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="reference 'None' cannot be read"):
        get_reward_funcs(["exact_answer"], "arithmetic")[0](completions=["7"], answer=["None"])


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_bundled_reference_is_readable(name: str) -> None:
    benchmark = BENCHMARKS[name]
    assert all(benchmark.reference(item.answer) == item.answer for item in benchmark.load("test"))
