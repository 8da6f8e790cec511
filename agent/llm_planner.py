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
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from internflow.agent.guard import signature
from internflow.agent.moves import MOVES, unseen_rows
from internflow.agent.planner import Planner, PlannerState
from internflow.agent.search_policy import SearchPolicy
from internflow.agent.search_space import PlannerOutput, PlannerOutputError, SearchSpace
from internflow.recipes import load_recipe
from internflow.schemas import IterationParams, Proposal

if TYPE_CHECKING:
    from smolagents import Model, Tool

    from internflow.agent.backends import LikelihoodScorer

__all__ = [
    "BundledPlanner",
    "LLMPlanner",
    "PlannerOutput",
    "PlannerOutputError",
    "SearchSpace",
    "anchor_params",
    "parse_batch",
    "prompts",
]

PROMPTS = Path(__file__).parent / "prompts" / "planner.yaml"


@cache
def prompts() -> dict[str, str]:
    return dict(yaml.safe_load(PROMPTS.read_text()))


def _json_in(text: str, pattern: str, what: str) -> object:
    """The JSON value spanning `pattern`'s match in a model's text (prose around it is dropped)."""
    found = re.search(pattern, text, re.DOTALL)
    if not found:
        raise PlannerOutputError(f"no {what} in the answer: {text[:200]!r}")
    try:
        return json.loads(found.group(0))
    except json.JSONDecodeError as error:
        raise PlannerOutputError(f"invalid JSON ({error}): {found.group(0)[:200]!r}") from error


def parse_output(answer: object) -> PlannerOutput:
    """A model's final answer (a dict, or text holding one JSON object) as a PlannerOutput."""
    if isinstance(answer, str):
        answer = _json_in(answer, r"\{.*\}", "JSON object")
    if not isinstance(answer, dict):
        raise PlannerOutputError(f"expected a JSON object, got {type(answer).__name__}")
    try:
        return PlannerOutput.model_validate(answer)
    except ValidationError as error:
        raise PlannerOutputError(str(error).replace("\n", " ")) from error


def parse_batch(answer: object) -> list[PlannerOutput]:
    """A batch answer: {"proposals": [...]}, a JSON list, or one object (a batch of one)."""
    if isinstance(answer, str):
        answer = _json_in(answer, r"[\[{].*[\]}]", "JSON")
    if isinstance(answer, dict) and isinstance(answer.get("proposals"), list):
        answer = answer["proposals"]
    items = answer if isinstance(answer, list) else [answer]
    if not items:
        raise PlannerOutputError("the batch is empty")
    return [parse_output(item) for item in items]


def _params(space: SearchSpace, state: PlannerState, output: PlannerOutput) -> IterationParams:
    """The answer on the anchor; continuing the best model draws rows it has not seen unless the
    answer chose the shard itself (`agent.moves.unseen_rows`, as every search-policy move does)."""
    params = space.apply(anchor_params(state), output)
    return params if "data_shard" in output.changes() else unseen_rows(params, state)


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
    if state.pending:  # the round's earlier picks run alongside this one
        feedback += text["pending"].format(chosen="; ".join(signature(p) for p in state.pending))
    anchor = anchor_params(state).model_dump(mode="json", exclude={"seed"})
    return text["task"].format(
        model=state.config.model,
        benchmark=state.config.benchmark,
        digest=state.digest or "(no iterations yet)",
        anchor=json.dumps(anchor),
        space=space.describe(),
        moves="\n".join(f"- {name}" for name, _ in MOVES),
        budget=_budget_text(state),
        feedback=feedback,
        final_instruction=final_instruction,
    )


def _budget_text(state: PlannerState) -> str:
    """What is left of the campaign's budget: iterations, and minutes once an iteration has ended."""
    done = len(state.history) + len(state.failures)
    ends = [r.finished_s for r in state.history if r.finished_s is not None]
    ends += [f.finished_s for f in state.failures if f.finished_s is not None]
    total = state.config.time_budget_minutes
    minutes = f", about {total - max(ends) / 60:.1f} of {total:g} minutes" if ends else f", {total:g} minutes"
    return f"{state.config.max_iterations - done} of {state.config.max_iterations} iterations{minutes}"


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

    def propose_batch(self, state: PlannerState, size: int) -> list[Proposal]:
        """Up to `size` distinct proposals for one round, from one answer of the model (a JSON list);
        the slots it leaves empty or fills with repeats go to the search policy's next picks."""
        errors: list[str] = []
        try:
            with self.mcp_tools() as extra_tools:
                chosen = self._ask_batch(state, size, extra_tools, errors)
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}"[:400])
            chosen = []
        if len(chosen) < size:
            pending = state.pending + tuple(p.params for p in chosen)
            more = SearchPolicy().propose_batch(state.model_copy(update={"pending": pending}), size - len(chosen))
            why = f"{self.name} planner proposed {len(chosen)} of {size}" + (
                f" ({' | '.join(errors)})" if errors else ""
            )
            chosen += [
                p.model_copy(update={"rationale": f"{p.rationale} [fallback: {why}]", "source": "search (fallback)"})
                for p in more
            ]
        return chosen

    def stop_reason(self, state: PlannerState) -> str:
        """Only the fallback ever has nothing to propose (a failed model hands over to it): its reason."""
        explain = getattr(self.fallback, "stop_reason", None)
        return str(explain(state)) if explain else "the fallback planner had nothing to propose"

    def _agent(self, state: PlannerState, extra_tools: list[Tool]):  # type: ignore[no-untyped-def]
        from smolagents import Model, ToolCallingAgent

        from internflow.agent.tools import campaign_tools

        model = self._model if isinstance(self._model, Model) else self._model()
        return ToolCallingAgent(
            tools=[*campaign_tools(state), *extra_tools],
            model=model,
            max_steps=self.max_agent_steps,
            instructions=prompts()["system"],
            verbosity_level=0,
        )

    def _ask_batch(self, state: PlannerState, size: int, extra_tools: list[Tool], errors: list[str]) -> list[Proposal]:
        agent, space = self._agent(state, extra_tools), SearchSpace.for_state(state)
        request = _task_text(state, space, prompts()["batch"].format(size=size) + prompts()["agent_instruction"])
        # Repeats within the round are dropped; a repeat of a past run is left to the guard, which
        # re-asks with its reasons (the model learns why).
        taken = {signature(p) for p in state.pending}
        for attempt in range(2):  # the answer, then one repair
            try:
                outputs = parse_batch(agent.run(request, reset=attempt == 0))
                chosen: list[Proposal] = []
                for output in outputs:
                    params = _params(space, state, output)
                    if signature(params) not in taken and len(chosen) < size:
                        taken.add(signature(params))
                        chosen.append(
                            Proposal(params=params, rationale=output.rationale, evidence=tuple(output.evidence),
                                     source=self.name)
                        )  # fmt: skip
                return chosen
            except Exception as error:  # repaired once, then the search policy fills the round
                errors.append(f"{type(error).__name__}: {error}"[:400])
                request = prompts()["repair"].format(error=errors[-1])
        return []

    def _ask(self, state: PlannerState, extra_tools: list[Tool], errors: list[str]) -> Proposal | None:
        agent, space = self._agent(state, extra_tools), SearchSpace.for_state(state)
        request = _task_text(state, space, prompts()["agent_instruction"])
        for attempt in range(2):  # the answer, then one repair
            try:
                answer = agent.run(request, reset=attempt == 0)
                output = parse_output(answer)
                params = _params(space, state, output)
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
        """The search policy's candidates for this step (the same moves, screens and promotions, in
        the same search space and budget), with what each changes from the anchor."""
        anchor = anchor_params(state)
        return [
            option.model_copy(update={"rationale": f"{option.rationale} ({_changes(anchor, option.params)})"})
            if state.history or state.failures
            else option
            for option in SearchPolicy().candidates(state)
        ]

    def stop_reason(self, state: PlannerState) -> str:
        return SearchPolicy().stop_reason(state)

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
