"""Row quality checks: empty and over-long rows, exact and near duplicates, and rows whose
answer fails the benchmark's answer check.  Rejected rows are quarantined with their reason.

Near duplicates are rows whose prompt is the same once case, spacing and the punctuation around
words are ignored (a re-formatted copy, or a second answer to the same question); symbols,
operators, other scripts and emoji always count.  Fuzzy similarity (MinHash and
the like) is deliberately not used: templated tasks such as arithmetic differ only in a number,
and fuzzy matching would call distinct problems duplicates.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from internflow.benchmarks import Benchmark, get_benchmark
from internflow.data.formats import Example

__all__ = [
    "ANSWER_CHECKS",
    "AnswerCheck",
    "QualityConfig",
    "QualityResult",
    "Quarantined",
    "answer_check_for",
    "check_rows",
]

AnswerCheck = Callable[[Example], bool | None]  # True: right, False: wrong, None: cannot tell

# Stripped from the ends of words only: sentence punctuation and quotes, never symbols or operators.
_SENTENCE_PUNCTUATION = ".,;:!?'\"`\u201c\u201d\u2018\u2019\u00ab\u00bb\u2026\u3002\uff0c\uff01\uff1f\u3001"
_EXPRESSION = re.compile(r"-?\d+(?:\s*[-+]\s*-?\d+)+")
_TERM = re.compile(r"([-+]?)\s*(-?\d+)")


class QualityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_chars: int = Field(8000, ge=1, description="Rows longer than this (prompt + answers) are rejected.")
    check_answers: bool = Field(True, description="Reject rows whose answer fails the benchmark's answer check.")


@dataclass(frozen=True)
class Quarantined:
    where: str
    reason: str
    row: dict
    detail: str = ""  # what the reason alone does not say: '612 tokens > max_length 256', the part kinds


@dataclass
class QualityResult:
    kept: list[tuple[str, Example]] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)

    @property
    def rejected(self) -> Counter[str]:
        return Counter(q.reason for q in self.quarantined)


def _near_key(text: str) -> str:
    """Case, spacing and the punctuation that ends or wraps words ignored; everything inside a word
    kept: symbols and operators (`<` vs `>`, `^` vs `%`), decimals (`3.5` vs `35`), other scripts'
    letters and marks (Devanagari vowel signs), emoji.  Only what sentence punctuation changes merges."""
    words = (word.strip(_SENTENCE_PUNCTUATION) for word in unicodedata.normalize("NFC", text).casefold().split())
    return " ".join(word for word in words if word)


def _arithmetic_expected(prompt: str) -> float | None:
    """'... problem: 92 + 82 =' → 174 (the last sum in the prompt); None when there is none."""
    sums = _EXPRESSION.findall(prompt)
    if not sums:
        return None
    total = 0.0
    for sign, number in _TERM.findall(sums[-1]):
        total += -float(number) if sign == "-" else float(number)
    return total


def _arithmetic_check(benchmark: Benchmark) -> AnswerCheck:
    def check(example: Example) -> bool | None:
        expected = _arithmetic_expected(example.prompt_text)
        if expected is None:
            return None
        if example.completion is None:
            stated = example.answer
        else:
            text = example.completion_text.strip()
            # A bare number is its own answer: skip the extractor's regexes (most rows, and the hot path).
            stated = text if text.lstrip("-").isdigit() else benchmark.extract(text)
        return stated is not None and benchmark.judge(stated, f"{expected:g}")

    return check


# benchmark name → factory of its answer check; a benchmark without one is not checked.
ANSWER_CHECKS: dict[str, Callable[[Benchmark], AnswerCheck]] = {"arithmetic": _arithmetic_check}


def answer_check_for(benchmark: str) -> AnswerCheck | None:
    factory = ANSWER_CHECKS.get(benchmark)
    return factory(get_benchmark(benchmark)) if factory else None


def check_rows(
    rows: Iterable[tuple[str, Example, dict]],
    config: QualityConfig | None = None,
    answer_check: AnswerCheck | None = None,
    skip: Callable[[Example], str | None] | None = None,
) -> QualityResult:
    """Keep the good rows of `rows` ((where, example, raw row)), quarantine the rest with a reason.
    `skip` may reject a row for an outside reason first (the decontamination gate)."""
    config = config or QualityConfig()
    result = QualityResult()
    exact: set[tuple[str, str, str]] = set()
    near: set[str] = set()
    for where, example, raw in rows:
        prompt, completion = example.prompt_text, example.completion_text
        rejected_text = "\n".join(m.get("content", "") for m in example.rejected or [])
        reason = skip(example) if skip else None
        if reason is None:
            reason = _reason(example, prompt, completion, rejected_text, config, answer_check, exact, near)
        if reason:
            result.quarantined.append(Quarantined(where, reason, raw))
        else:
            result.kept.append((where, example))
    return result


def _reason(
    example: Example,
    prompt: str,
    completion: str,
    rejected_text: str,
    config: QualityConfig,
    answer_check: AnswerCheck | None,
    exact: set[tuple[str, str, str]],
    near: set[str],
) -> str | None:
    if not prompt.strip() or (example.completion is not None and not completion.strip()):
        return "empty"
    if example.rejected is not None and not rejected_text.strip():
        return "empty"
    if len(prompt) + len(completion) + len(rejected_text) > config.max_chars:
        return "too_long"
    key = (prompt, completion, rejected_text)
    if key in exact:
        return "duplicate"
    near_key = _near_key(prompt)
    if near_key in near:
        return "near_duplicate"
    if config.check_answers and answer_check is not None and answer_check(example) is False:
        return "wrong_answer"
    exact.add(key)
    near.add(near_key)
    return None
