"""Rank papers by relevance to the campaign's goal, and pull actionable hints out of what they say:
methods, hyper-parameters and datasets named, each with the sentence it came from.

Relevance is term overlap with the goal (stop words aside; a match in the title counts double,
one in the method sections half), plus a little for each extra source that found the paper.
It is simple on purpose: every score can be explained in one line, which `why` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from internflow.literature.paper_html import Section
from internflow.schemas import Hint, Paper

__all__ = ["extract_hints", "goal_terms", "rank_papers", "score_paper"]

_WORD = re.compile(r"[a-z0-9][a-z0-9+-]*")
_STOP = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "into", "is", "it", "of", "on",
    "or", "that", "the", "this", "to", "with", "we", "our", "using", "via", "language", "model", "models", "large",
    "small",
))  # fmt: skip
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_NUMBER = r"(\d+(?:\.\d+)?(?:\s*\\?(?:times|×|x)\s*10\^\{?-?\d+\}?|e-?\d+)?)"

HYPERPARAMETERS: dict[str, re.Pattern[str]] = {
    "learning_rate": re.compile(r"learning rate (?:of |to |= ?|: ?)?" + _NUMBER, re.I),
    "batch_size": re.compile(r"batch size (?:of |= ?|: ?)?(\d+)", re.I),
    "max_steps": re.compile(r"(?:for |train(?:ed)? for )(\d[\d,]*) (?:optimizer |training |gradient )?steps", re.I),
    "warmup_steps": re.compile(r"(\d+) warm-?up steps", re.I),
    "epochs": re.compile(r"(\d+) epochs?", re.I),
    "lora_r": re.compile(r"(?:LoRA )?rank (?:of )?(\d+)", re.I),
    "lora_alpha": re.compile(r"alpha (?:of |= ?)?(\d+)", re.I),
    "beta": re.compile(r"(?:β|\\beta|beta)\s*(?:=|of)\s*(\d+(?:\.\d+)?)", re.I),
}
METHODS: dict[str, re.Pattern[str]] = {
    "sft": re.compile(r"supervised fine-?tuning|\bSFT\b", re.I),
    "lora": re.compile(r"\bLoRA\b"),
    "dpo": re.compile(r"\bDPO\b|direct preference optimi[sz]ation", re.I),
    "grpo": re.compile(r"\bGRPO\b|group relative policy optimi[sz]ation", re.I),
    "ppo": re.compile(r"\bPPO\b|proximal policy optimi[sz]ation", re.I),
    "completion_only_loss": re.compile(r"completion only|prompt tokens masked|mask(?:ing)? the prompt", re.I),
    "reversed_digits": re.compile(
        r"digits? reversed|revers(?:e|ing) the digits|least[- ]significant (?:digit )?first", re.I
    ),
    "curriculum": re.compile(r"\bcurriculum\b", re.I),
    "chain_of_thought": re.compile(r"chain[- ]of[- ]thought|worked solutions?", re.I),
}
KNOWN_DATASETS = (
    "GSM8K",
    "MATH",
    "MetaMathQA",
    "SVAMP",
    "ASDiv",
    "AQuA",
    "OpenMathInstruct",
    "UltraFeedback",
    "Alpaca",
)
_DATASET = re.compile(
    r"\b(" + "|".join(KNOWN_DATASETS) + r")(?:-\d+)?\b|\b([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)\s+dataset"
)


def goal_terms(goal: str) -> set[str]:
    return {w for w in _WORD.findall(goal.lower()) if w not in _STOP and len(w) > 1}


def _terms(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def score_paper(paper: Paper, goal: str, sections: Iterable[Section] = ()) -> Paper:
    """The paper with `score` and `why` filled in."""
    terms = goal_terms(goal)
    if not terms:
        return paper.model_copy(update={"score": 0.0, "why": "no goal terms to match"})
    in_title = terms & _terms(paper.title)
    in_summary = (terms & _terms(paper.summary)) - in_title
    in_sections = (terms & _terms(" ".join(s.text for s in sections))) - in_title - in_summary
    sources = len(set(paper.found_by))
    score = (2 * len(in_title) + len(in_summary) + 0.5 * len(in_sections)) / len(terms) + 0.1 * max(0, sources - 1)
    parts = [
        f"title: {', '.join(sorted(in_title))}" if in_title else "",
        f"abstract: {', '.join(sorted(in_summary))}" if in_summary else "",
    ]
    parts.append(f"methods: {', '.join(sorted(in_sections))}" if in_sections else "")
    parts.append(f"found by {' + '.join(paper.found_by)}" if paper.found_by else "")
    why = "; ".join(p for p in parts if p) or "no goal term matched"
    return paper.model_copy(update={"score": round(score, 3), "why": why})


def rank_papers(papers: Iterable[Paper], goal: str, sections: dict[str, list[Section]] | None = None) -> list[Paper]:
    """Papers scored against the goal, best first (ties: earlier found first)."""
    scored = [score_paper(p, goal, (sections or {}).get(p.arxiv_id, ())) for p in papers]
    return sorted(scored, key=lambda p: -p.score)


def _plain_number(text: str) -> str:
    """'2\\times 10^{-4}' → '2e-4'; '1,000' → '1000'."""
    tex = re.fullmatch(r"(\d+(?:\.\d+)?)\s*\\?(?:times|×|x)\s*10\^\{?(-?\d+)\}?", text.strip())
    return f"{tex.group(1)}e{tex.group(2)}" if tex else text.replace(",", "")


def extract_hints(arxiv_id: str, sections: Iterable[Section]) -> list[Hint]:
    """Methods, hyper-parameters and datasets a paper names, each with its sentence."""
    hints: list[Hint] = []
    seen: set[tuple[str, str, str]] = set()

    def add(kind: str, name: str, value: str, section: Section, sentence: str) -> None:
        key = (kind, name, value)
        if key not in seen:
            seen.add(key)
            hints.append(
                Hint(kind=kind, name=name, value=value, paper=arxiv_id, section=section.title, passage=sentence)  # type: ignore[arg-type]
            )

    for section in sections:
        for sentence in _SENTENCE.split(section.text):
            for name, pattern in METHODS.items():
                if pattern.search(sentence):
                    add("method", name, "", section, sentence)
            for name, pattern in HYPERPARAMETERS.items():
                for match in pattern.finditer(sentence):
                    add("hyperparameter", name, _plain_number(match.group(1)), section, sentence)
            for match in _DATASET.finditer(sentence):
                add("dataset", match.group(1) or match.group(2), "", section, sentence)
    return hints
