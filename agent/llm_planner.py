"""LLM planners: a smolagents tool-using agent, and the bundled SmolLM2 that ranks candidates.

Both return a validated `Proposal` inside an explicit, bounded `SearchSpace`; the base model,
benchmark and evaluator are not in it.  The agent planner (`LLMPlanner`) asks a chat model
through smolagents' `ToolCallingAgent` for one JSON object; an invalid or failed answer gets one
repair attempt, then the deterministic search policy answers instead, with the reason recorded.
The bundled planner (`BundledPlanner`) cannot produce invalid output: it scores a set of valid
candidate proposals by the model's likelihood given the campaign digest and picks the best.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.guard import allowed_methods, signature
from agent.planner import Planner, PlannerState, load_recipe
from internflow.schemas import IterationParams, Proposal

if TYPE_CHECKING:
    from smolagents import Model, Tool

    from agent.backends import LikelihoodScorer

__all__ = [
    "BundledPlanner",
    "LLMPlanner",
    "PlannerOutput",
    "PlannerOutputError",
    "SearchSpace",
    "anchor_params",
    "prompts",
]

PROMPTS = Path(__file__).parent / "prompts" / "planner.yaml"


@cache
def prompts() -> dict[str, str]:
    return dict(yaml.safe_load(PROMPTS.read_text()))


class PlannerOutputError(ValueError):
    """The model's answer is not a usable proposal; the message says why (fed back for repair)."""


class PlannerOutput(BaseModel):
    """What an LLM may set: a subset of IterationParams plus its reasons.  Nothing else passes."""

    model_config = ConfigDict(extra="forbid")

    method: str | None = None
    init_from: typing.Literal["base", "best"] | None = None
    datasets: list[str] | None = None
    max_train_samples: int | None = None
    learning_rate: float | None = None
    max_steps: int | None = None
    per_device_train_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    warmup_steps: int | None = None
    lr_scheduler_type: typing.Literal["cosine", "linear", "constant_with_warmup"] | None = None
    use_lora: bool | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    max_length: int | None = None
    eval_fraction: float | None = None
    rationale: str = Field(min_length=1)
    evidence: list[str] = Field(default_factory=list)


class SearchSpace(BaseModel):
    """The bounded region the planner may propose in (ranges inclusive)."""

    model_config = ConfigDict(frozen=True)

    methods: tuple[str, ...] = Field(default_factory=allowed_methods)
    datasets: tuple[str, ...]
    datasets_by_method: dict[str, tuple[str, ...]] = {}  # empty: every dataset for every method
    bounds: dict[str, tuple[float, float]] = {
        "learning_rate": (1e-6, 1e-3),
        "max_steps": (5, 2000),
        "max_train_samples": (16, 50_000),
        "per_device_train_batch_size": (1, 64),
        "gradient_accumulation_steps": (1, 16),
        "warmup_steps": (0, 200),
        "lora_r": (4, 128),
        "lora_alpha": (4, 256),
        "max_length": (64, 1024),
        "eval_fraction": (0.25, 1.0),
    }

    @classmethod
    def for_state(cls, state: PlannerState) -> SearchSpace:
        return cls(datasets=state.datasets, datasets_by_method=state.datasets_by_method)

    def datasets_for(self, method: str) -> tuple[str, ...]:
        return self.datasets_by_method.get(method, ()) if self.datasets_by_method else self.datasets

    def describe(self) -> str:
        per_method = "; ".join(f"{m}: {list(self.datasets_for(m))}" for m in self.methods)
        lines = [
            f"- method: one of {list(self.methods)}",
            '- init_from: "base" (the base model) or "best" (continue training the best iteration\'s model)',
            f"- datasets: a non-empty list, mixed, of datasets that can train the method ({per_method})",
            '- lr_scheduler_type: "cosine", "linear" or "constant_with_warmup"; use_lora: true/false',
            "- eval_fraction: share of the eval subset to score on; below 1 is a cheaper, noisier screen "
            "(compared with the baseline on the same items) that cannot become the best until re-run at 1",
        ]
        lines += [f"- {name}: {low:g} to {high:g}" for name, (low, high) in self.bounds.items()]
        return "\n".join(lines)

    def contains(self, params: IterationParams) -> bool:
        values = params.model_dump()
        return (
            params.method in self.methods
            and all(d in self.datasets_for(params.method) for d in params.datasets)
            and all(low <= values[name] <= high for name, (low, high) in self.bounds.items())
        )

    def apply(self, anchor: IterationParams, output: PlannerOutput) -> IterationParams:
        """The anchor with the output's fields set, checked against these bounds and the schema."""
        changes = output.model_dump(exclude_none=True, exclude={"rationale", "evidence"})
        problems = []
        if "method" in changes and changes["method"] not in self.methods:
            problems.append(f"method: {changes['method']!r} is not one of {list(self.methods)}")
        if "datasets" in changes:
            unknown = [d for d in changes["datasets"] if d not in self.datasets]
            if unknown or not changes["datasets"]:
                problems.append(f"datasets: {unknown or 'empty'} not in the catalog {list(self.datasets)}")
            changes["datasets"] = tuple(changes["datasets"])
        for name, (low, high) in self.bounds.items():
            if name in changes and not low <= changes[name] <= high:
                problems.append(f"{name}: {changes[name]} is outside {low:g}..{high:g}")
        if problems:
            raise PlannerOutputError("; ".join(problems))
        try:
            params = IterationParams.model_validate(anchor.model_dump() | changes)
        except ValidationError as error:
            raise PlannerOutputError(str(error)) from error
        unfit = [d for d in params.datasets if d not in self.datasets_for(params.method)]
        if unfit:
            usable = list(self.datasets_for(params.method))
            raise PlannerOutputError(f"datasets: {unfit} cannot train {params.method}; use some of {usable}")
        return params


def parse_output(answer: object) -> PlannerOutput:
    """A model's final answer (a dict, or text holding one JSON object) as a PlannerOutput."""
    if isinstance(answer, str):
        found = re.search(r"\{.*\}", answer, re.DOTALL)
        if not found:
            raise PlannerOutputError(f"no JSON object in the answer: {answer[:200]!r}")
        try:
            answer = json.loads(found.group(0))
        except json.JSONDecodeError as error:
            raise PlannerOutputError(f"invalid JSON ({error}): {found.group(0)[:200]!r}") from error
    if not isinstance(answer, dict):
        raise PlannerOutputError(f"expected a JSON object, got {type(answer).__name__}")
    try:
        return PlannerOutput.model_validate(answer)
    except ValidationError as error:
        raise PlannerOutputError(str(error).replace("\n", " ")) from error


def anchor_params(state: PlannerState) -> IterationParams:
    """Where proposals start from: the best iteration, else the latest attempt, else the recipe;
    scored on the whole eval subset, so that a screen is always the planner's explicit choice."""
    best = state.best_iteration()
    attempts = [(r.index, r.params) for r in state.history] + [(f.index, f.params) for f in state.failures]
    if best is not None:
        anchor = best.params
    elif attempts:
        anchor = max(attempts, key=lambda a: a[0])[1]
    else:
        anchor = load_recipe(state.config.model, state.config.recipe, state.default_datasets)
    return anchor.scored_in_full()


def _task_text(state: PlannerState, space: SearchSpace, final_instruction: str) -> str:
    text = prompts()
    feedback = text["feedback"].format(reasons=state.feedback) if state.feedback else ""
    anchor = anchor_params(state).model_dump(mode="json", exclude={"seed"})
    return text["task"].format(
        model=state.config.model,
        benchmark=state.config.benchmark,
        digest=state.digest or "(no iterations yet)",
        anchor=json.dumps(anchor),
        space=space.describe(),
        feedback=feedback,
        final_instruction=final_instruction,
    )


class LLMPlanner:
    """A smolagents ToolCallingAgent over any smolagents `Model`, with repair and fallback.

    `model` may be a factory (built on first use); `mcp_tools` opens the configured MCP servers'
    tools for the duration of one proposal."""

    def __init__(
        self,
        model: Model | Callable[[], Model],
        name: str,
        mcp_tools: Callable[[], AbstractContextManager[list[Tool]]] | None = None,
        fallback: Planner | None = None,
        max_agent_steps: int = 4,
    ) -> None:
        from agent.search_policy import SearchPolicy

        self._model, self.name = model, name
        self.mcp_tools = mcp_tools or (lambda: nullcontext([]))
        self.fallback = fallback or SearchPolicy()
        self.max_agent_steps = max_agent_steps

    def propose(self, state: PlannerState) -> Proposal | None:
        errors: list[str] = []
        try:
            with self.mcp_tools() as extra_tools:
                proposal = self._ask(state, extra_tools, errors)
        except Exception as error:  # the model or an MCP server could not even be reached
            errors.append(f"{type(error).__name__}: {error}"[:400])
            proposal = None
        if proposal is not None:
            return proposal
        fallback = self.fallback.propose(state)
        if fallback is None:
            return None
        reason = f"{self.name} planner failed ({' | '.join(errors)}); search policy used instead"
        return fallback.model_copy(
            update={"rationale": f"{fallback.rationale} [fallback: {reason}]", "source": "search (fallback)"}
        )

    def _ask(self, state: PlannerState, extra_tools: list[Tool], errors: list[str]) -> Proposal | None:
        from smolagents import Model, ToolCallingAgent

        from agent.tools import campaign_tools

        model = self._model if isinstance(self._model, Model) else self._model()
        space = SearchSpace.for_state(state)
        agent = ToolCallingAgent(
            tools=[*campaign_tools(state), *extra_tools],
            model=model,
            max_steps=self.max_agent_steps,
            instructions=prompts()["system"],
            verbosity_level=0,
        )
        request = _task_text(state, space, prompts()["agent_instruction"])
        for attempt in range(2):  # the answer, then one repair
            try:
                answer = agent.run(request, reset=attempt == 0)
                output = parse_output(answer)
                params = space.apply(anchor_params(state), output)
                return Proposal(
                    params=params, rationale=output.rationale, evidence=tuple(output.evidence), source=self.name
                )
            except Exception as error:  # any model/agent/validation failure is repaired once, then falls back
                errors.append(f"{type(error).__name__}: {error}"[:400])
                request = prompts()["repair"].format(error=errors[-1])
        return None


class BundledPlanner:
    """SmolLM2 (or any local causal LM) ranks the search policy's valid candidate moves by likelihood."""

    def __init__(self, scorer: LikelihoodScorer, name: str = "bundled") -> None:
        self.scorer, self.name = scorer, name

    def candidates(self, state: PlannerState) -> list[Proposal]:
        """Every untried single move the search policy knows around the anchor, inside the search space."""
        from agent.search_policy import MOVES, _within_bounds

        tried = {signature(r.params) for r in state.history} | {signature(f.params) for f in state.failures}
        tried |= set(state.rejected)
        if not state.history and not state.failures:
            params = load_recipe(state.config.model, state.config.recipe, state.default_datasets)
            return [Proposal(params=params, rationale=f"start from recipe {state.config.recipe!r}")]
        anchor, space = anchor_params(state), SearchSpace.for_state(state)
        found: dict[str, Proposal] = {}
        for name, move in MOVES:
            candidate = _within_bounds(move(anchor, state))
            if candidate is not None and signature(candidate) not in tried and space.contains(candidate):
                changed = _changes(anchor, candidate)
                found.setdefault(signature(candidate), Proposal(params=candidate, rationale=f"{name} ({changed})"))
        return list(found.values())

    def propose(self, state: PlannerState) -> Proposal | None:
        options = self.candidates(state)
        if len(options) <= 1:
            return options[0].model_copy(update={"source": self.name}) if options else None
        context = prompts()["score_prompt"].format(
            system=prompts()["system"], digest=state.digest or "(no iterations yet)"
        )
        if state.feedback:
            context += f"\nRejected before: {state.feedback}\n"
        scores = self.scorer.score(context, [option.rationale for option in options])
        ranked = sorted(zip(scores, options, strict=True), key=lambda pair: -pair[0])
        score, choice = ranked[0]
        runner_up = ", ".join(f"{o.rationale} ({s:.2f})" for s, o in ranked[1:3])
        return choice.model_copy(
            update={
                "rationale": f"{choice.rationale} (chosen by {self.name} from {len(options)} candidates)",
                "evidence": (f"mean log-likelihood {score:.2f} given the digest", f"runners-up: {runner_up}"),
                "source": self.name,
            }
        )


def _changes(before: IterationParams, after: IterationParams) -> str:
    old, new = before.model_dump(), after.model_dump()
    return ", ".join(f"{key}={new[key]}" for key in new if new[key] != old[key]) or "no change"
