"""An evaluation as markdown for its artifact: the score with n and its interval, then the
failures, worst first, each with its whole question."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from internflow.markdown import cell, code, table
from internflow.schemas import EvalResult

__all__ = ["evaluation_markdown", "shared_ends"]


def shared_ends(prompts: Sequence[str]) -> tuple[str, str]:
    """The instruction every prompt starts and ends with (whole words), so a table can show only
    the part that differs, whole.  Empty when there is a single prompt or little is shared."""
    if len(prompts) < 2:
        return "", ""
    head_match = re.match(r"(?s).*\s", os.path.commonprefix(list(prompts)))
    head = head_match.group(0) if head_match else ""
    reversed_tail = os.path.commonprefix([p[len(head) :][::-1] for p in prompts])
    tail_match = re.search(r"(?s)\s.*", reversed_tail[::-1])
    tail = tail_match.group(0) if tail_match else ""
    return (head, tail) if len(head) + len(tail) >= 12 else ("", "")


def evaluation_markdown(result: EvalResult, samples: Sequence[Mapping[str, Any]], shown: int = 20) -> str:
    """Score with n and CI, then the failures only, worst first (no answer found, then wrong answers),
    each with its whole question; the instruction every prompt shares is stated once above them.
    Short questions and outputs make a table; longer ones a labelled block per failure, since the
    Prefect UI does not wrap table cells and a long cell pushes the other columns out of sight."""
    every_failure = sorted((s for s in samples if not s["correct"]), key=lambda s: s["extracted"] is not None)
    failures = every_failure[:shown]
    head, tail = shared_ends([s["prompt"] for s in samples])
    summary = (
        f"## {cell(result.label)}: {result.accuracy:.1%} on {cell(result.benchmark)}\n\n"
        f"n = {result.n}, {result.n_correct} correct, 95 % CI [{result.ci_low:.1%}, {result.ci_high:.1%}], "
        f"no answer found in {result.unparseable}; over the model's context (not answered): {result.over_length}; "
        f"answers from {result.backend or 'unknown'}; every sample: {code(result.samples_path)}\n\n"
    )
    if not failures:
        return summary + f"All {result.n} answers are correct."
    shared = f"Every prompt reads {code(head + '…' + tail)}; shown is the question in between.\n\n"
    questions = [" ".join(s["prompt"][len(head) : len(s["prompt"]) - len(tail)].split()) for s in failures]
    outputs = [" ".join(str(s["output"] or "").split()) for s in failures]
    found = [cell(s["extracted"], 60) if s["extracted"] is not None else "*none found*" for s in failures]
    if max(map(len, questions + outputs)) <= 80:
        body = table(
            ["item", "question", "model output", "extracted answer", "expected answer"],
            [[cell(s["id"]), cell(q), cell(o), f, cell(s["expected"], 60)]
             for s, q, o, f in zip(failures, questions, outputs, found, strict=True)],
        )  # fmt: skip
    else:
        body = "\n\n".join(
            f"**{cell(s['id'])}** — expected answer: {cell(s['expected'], 60)}; extracted answer: {f}\n\n"
            f"> **Question:** {cell(q, 4000)}\n>\n> **Model output:** {cell(o, 600)}"
            for s, q, o, f in zip(failures, questions, outputs, found, strict=True)
        )
    return (
        summary
        + f"### Failures, worst first ({len(failures)} of {len(every_failure)} shown)\n\n"
        + "Answers with no extractable answer come first, then wrong answers.\n\n"
        + (shared if head or tail else "")
        + body
    )
