"""The bundled benchmarks: answer extraction, the registry, the data splits and their provenance."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from internflow.benchmarks import (
    BENCHMARKS,
    UnknownBenchmarkError,
    extract_choice,
    extract_number,
    get_benchmark,
    render_multiple_choice,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is 7.", "7"),
        ("3 + 4 = 7", "7"),
        ("-12", "-12"),
        ("The answer is 7, since 3 + 4 = 7 and not 8", "7"),  # a stated answer beats the last number
        ("Answer: **12.5**", "12.5"),
        ("no digits", None),
        ("", None),
    ],
)
def test_extract_number(output: str, expected: str | None) -> None:
    assert extract_number(output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("B", "B"),
        ("  A\n", "A"),
        ("The answer is C.", "C"),
        ("answer: d", "D"),
        ("(D) grandson", "D"),
        ("B) wife", "B"),
        ("I think it is C.", "C"),
        ("I don't know", None),
        ("Daughter", None),  # a capital D starting a word is not an option letter
        ("", None),
    ],
)
def test_extract_choice(output: str, expected: str | None) -> None:
    assert extract_choice(output) == expected


@pytest.mark.parametrize("output", ["The answer is a grandson.", "The answer is a daughter-in-law"])
def test_extract_choice_does_not_read_the_article_a_as_option_a(output: str) -> None:
    # A model that names the relation instead of a letter gave no option: it must count as
    # unparseable (the format_failure signal), not as a vote for option A.
    assert extract_choice(output) is None


def test_unknown_benchmark_names_the_known_ones() -> None:
    with pytest.raises(UnknownBenchmarkError, match="nope") as caught:
        get_benchmark("nope")
    for name in BENCHMARKS:
        assert name in str(caught.value)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_train_and_test_splits_are_disjoint(name: str) -> None:
    benchmark = get_benchmark(name)
    train, test = benchmark.load("train"), benchmark.load("test")
    assert len(test) == 200
    assert len({item.question for item in test}) == 200
    assert not {item.question for item in train} & {item.question for item in test}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_test_answer_is_judged_correct_against_itself(name: str) -> None:
    # The extractor must recover a well-formed answer, or the benchmark cannot be scored at all.
    benchmark = get_benchmark(name)
    for item in benchmark.load("test"):
        extracted = benchmark.extract(item.answer)
        assert extracted is not None and benchmark.judge(extracted, item.answer), item.id


def test_render_multiple_choice_layout() -> None:
    text = render_multiple_choice("Who is Ann to Bob?", ("mother", "sister", "aunt", "wife"))
    assert text == (
        "Who is Ann to Bob?\n\nA) mother\nB) sister\nC) aunt\nD) wife\n\nAnswer with the letter of the correct option."
    )


def test_multiple_choice_prompt_uses_the_shared_layout() -> None:
    benchmark = get_benchmark("family-mc")
    item = benchmark.load("test")[0]
    assert benchmark.prompt(item) == render_multiple_choice(item.question, item.choices)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_fingerprint_is_stable_across_calls(name: str) -> None:
    first = get_benchmark(name).fingerprint()
    assert first == get_benchmark(name).fingerprint()
    assert len(first) == 16


def test_benchmark_fingerprints_differ() -> None:
    assert len({benchmark.fingerprint() for benchmark in BENCHMARKS.values()}) == len(BENCHMARKS)


def test_bundled_data_is_reproducible_from_the_generator_script() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/generate_data.py", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
