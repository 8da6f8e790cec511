"""Reading answers: numbers and multiple-choice letters, from model outputs and from gold references.

One normaliser for every place that judges an answer — benchmark evaluation, user task specs,
the dataset stage's answer checks and GRPO rewards — so that a reference and an output are read
the same way and the reward can never disagree with the evaluation.

Numbers are read in the forms models and datasets write them: thousands separators (`1,234`),
currency (`$1,250.50`, `€`, `£`), the Unicode minus (U+2212), markdown bold, trailing
punctuation, GSM8K's worked references (`… #### 72`) and LaTeX `\\boxed{…}`.  A European
decimal comma (`1,5`) is not a number form read here.  Choices are the letters A-J (at most ten
options, as MMLU-Pro has), in plain text, markdown bold (`**B**`, `**B) green**`), `(C)` or
`\\boxed{D}`; a gold answer may also be a 0-based index or the option's own text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation

__all__ = [
    "last_boxed",
    "LETTERS",
    "MAX_CHOICES",
    "UnreadableAnswerError",
    "choice_extractor",
    "extract_choice",
    "extract_number",
    "letters_equal",
    "numbers_equal",
    "read_choice",
    "read_letter",
    "read_number",
]

LETTERS = "ABCDEFGHIJ"
MAX_CHOICES = len(LETTERS)


class UnreadableAnswerError(ValueError):
    """A gold answer in a form that cannot be read; the message says what was expected."""


# A number as written: optional sign (ASCII or U+2212 minus) before or after a currency sign,
# thousands groups of exactly three digits (so "1,2,3" is three numbers, "72, in" is 72), decimals.
_NUMBER_BODY = r"[-\u2212]?[$€£]?[-\u2212]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?"
_NUMBER = re.compile(_NUMBER_BODY)
_STATED = re.compile(rf"answer\s*(?:is\s*:?|:)\s*[*_$\s]*({_NUMBER_BODY})", re.IGNORECASE)
_WORKED = re.compile(rf"####\s*[*_]*\s*({_NUMBER_BODY})")
_MARKUP = re.compile(r"\*+|__|`+|\\[()\[\]]")  # bold/italic, code, LaTeX math delimiters \( \) \[ \]
_TRAILING = re.compile(r"[\s.,;:!?)\]}$]+$")
_LEADING = re.compile(r"^[\s(\[{$]+")


def last_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{…}` (nested braces allowed), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for position in range(begin, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            if depth == 0:
                return text[begin:position]
            depth -= 1
    return None


def _canonical(written: str) -> str:
    """'−$1,250.50' → '-1250.5': sign, digits, no separators, no trailing zeros."""
    negative = "-" in written or "\u2212" in written
    digits = re.sub(r"[^\d.]", "", written)
    value = Decimal(digits)
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return f"-{text}" if negative else text


def extract_number(output: str) -> str | None:
    """The answer a model gave as a number, canonical ('1,234' → '1234'); None when it gave none.

    In order: the last `\\boxed{}`, a worked answer's `#### N`, the last 'answer is N' /
    'answer: N', else the last number in the text."""
    boxed = last_boxed(output)
    if boxed is not None:
        found = _NUMBER.findall(boxed)
        if found:
            return _canonical(found[-1])
    for pattern in (_WORKED, _STATED):
        stated = pattern.findall(output)
        if stated:
            return _canonical(stated[-1])
    numbers = _NUMBER.findall(output)
    return _canonical(numbers[-1]) if numbers else None


def read_number(reference: object) -> str | None:
    """A gold answer as a canonical number, or None when it is not exactly one number.

    Reads a bare number in any written form above, a worked answer ending `#### N` and a
    `\\boxed{N}`; text around the number ('72 apples', 'about 5') is not read: a reference must
    say one number and nothing else."""
    if isinstance(reference, bool) or reference is None:
        return None
    text = str(reference)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    boxed = last_boxed(text)
    if boxed is not None:
        text = boxed
    text = _LEADING.sub("", _TRAILING.sub("", _MARKUP.sub("", text)))
    return _canonical(text) if _NUMBER.fullmatch(text) else None


def numbers_equal(extracted: str, expected: str) -> bool:
    """Two answers compared as numbers ('7.0' is '7', '4,000' is '4000'); False when either is
    not a number."""
    left, right = read_number(extracted), read_number(expected)
    if left is None or right is None:
        return False
    try:
        return Decimal(left) == Decimal(right)
    except InvalidOperation:
        return False


def choice_extractor(n_choices: int = 4) -> Callable[[str], str | None]:
    """An extractor of option letters for items with up to `n_choices` options (A.. the n-th)."""
    if not 2 <= n_choices <= MAX_CHOICES:
        raise ValueError(f"choices: between 2 and {MAX_CHOICES} options are supported, got {n_choices}")
    upper = LETTERS[:n_choices]
    lower = upper.lower()
    # 'answer is C', 'answer: (c)', 'correct option: B': a lower-case letter only when nothing
    # follows it, since in 'the answer is a grandson' the 'a' is an article, not option A.
    stated = re.compile(
        rf"(?i:answer|option|choice)\s*(?i:is\s*:?|:)\s*\(?(?:([{upper}])\b|([{lower}])(?=\)|[.,:]?\s*$))"
    )
    # A letter on its own or marked as an option: 'B', '(D) grandson', 'B) wife', 'it is C.'
    alone = re.compile(rf"(?:^|[\s(\[])([{upper}])(?=[).:\]]|\s|$)")

    def extract_choice(output: str) -> str | None:
        """The option letter a model gave, or None: 'answer is C', '**B**', '(C)', a bare letter."""
        text = output
        boxed = last_boxed(text)
        if boxed is not None:
            text = boxed
        text = _MARKUP.sub("", text).strip()
        said = stated.findall(text)
        if said:
            capital, small = said[-1]
            return (capital or small).upper()
        for found in alone.finditer(text):
            letter = found.group(1)
            # 'A dog…', 'I think…': the article and the pronoun before a word are not options.
            if letter in "AI" and re.match(r"\s+[a-z]", text[found.end() :]):
                continue
            return letter
        return None

    return extract_choice


extract_choice = choice_extractor(4)


def letters_equal(extracted: str, expected: str) -> bool:
    """Two option letters compared ('b' is 'B')."""
    return extracted.strip().upper() == expected.strip().upper()


def read_letter(reference: object, n_choices: int = MAX_CHOICES) -> str | None:
    """A gold option letter ('B', 'b', '(B)', '**B**', 'B.') within the first `n_choices`, or None."""
    if not isinstance(reference, str):
        return None
    text = _LEADING.sub("", _TRAILING.sub("", _MARKUP.sub("", reference))).strip()
    if len(text) == 1 and text.upper() in LETTERS[:n_choices]:
        return text.upper()
    return None


def read_choice(reference: object, choices: Sequence[str]) -> str:
    """A gold answer for a multiple-choice item as its option letter: a letter, a 0-based index
    (an int, as MMLU stores it) or the exact text of one option.  Raises UnreadableAnswerError
    saying why (out of range, ambiguous, no such option) otherwise."""
    n = len(choices)
    if not 2 <= n <= MAX_CHOICES:
        raise UnreadableAnswerError(f"{n} choices: between 2 and {MAX_CHOICES} options (A-J) are supported")
    last = LETTERS[n - 1]
    if isinstance(reference, bool) or reference is None or isinstance(reference, float | list | dict):
        raise UnreadableAnswerError(f"{reference!r} is not an option letter (A-{last}) or a 0-based index")
    if isinstance(reference, int):
        if not 0 <= reference < n:
            raise UnreadableAnswerError(f"index {reference} is out of range for {n} choices (0-based: 0-{n - 1})")
        return LETTERS[reference]
    text = str(reference)
    letter = read_letter(text)
    if letter is not None:
        if LETTERS.index(letter) >= n:
            raise UnreadableAnswerError(
                f"{text!r} names option {LETTERS.index(letter) + 1} but the row has {n} choices (A-{last})"
            )
        return letter
    matching = [i for i, choice in enumerate(choices) if str(choice).strip().casefold() == text.strip().casefold()]
    as_index = int(text) if text.strip().isdigit() and int(text) < n else None
    if len(matching) > 1:
        raise UnreadableAnswerError(f"{text!r} is the text of {len(matching)} options: write the letter")
    if matching and as_index is not None and as_index != matching[0]:
        raise UnreadableAnswerError(
            f"{text!r} is both the text of option {LETTERS[matching[0]]} and index {as_index} "
            f"(option {LETTERS[as_index]}): write the letter"
        )
    if matching:
        return LETTERS[matching[0]]
    if as_index is not None:
        return LETTERS[as_index]
    raise UnreadableAnswerError(
        f"{text!r} is neither an option letter (A-{last}), a 0-based index, nor the text of one of the {n} choices"
    )
