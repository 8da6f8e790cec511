"""The deterministic planner: multi-fidelity hill climbing around the best iterations so far.

1. The first iteration is the campaign's recipe, run in full.
2. Then the last diagnosis' worst finding is answered first (diverged → lower the learning rate,
   barely learned → raise it, out of memory → LoRA...).
3. Otherwise it tries single moves (`agent/moves.py`, in order of expected value on a small
   budget: first continuing to train the best model and self-distilling from it) around the best
   iteration, then around every other iteration that beat the baseline, never proposing a
   parameter set it has already run.
4. Multi-fidelity: while the budget has room for a whole round (`SCREEN_WIDTH` screens and a
   full run), each move is first *screened* — trained for `SCREEN_TRAIN` of its steps and scored
   on `SCREEN_EVAL` of the eval subset — and after `SCREEN_WIDTH` screens (or
   `parallel_iterations`, when more iterations run side by side; or when the budget has room for
   only one more run) the best screen of the round is *promoted*: run in full, where it can
   become the best.  This is one rung of successive halving (Jamieson & Talwalkar, arXiv
   1502.07943; Hyperband, arXiv 1603.06560).
5. A proposal that would overrun the time left is shortened (down to a quarter of its steps)
   rather than dropped, so the campaign does not stop while a run still fits.
6. It returns None only when every move around every iteration that beat the baseline has run or
   cannot fit; `stop_reason` says which.

Every candidate lies in the one `SearchSpace` the LLM planners answer in.  It is also the
fallback whenever an LLM planner fails, and the bundled planner ranks its `candidates`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from internflow.agent.budget import estimate_iteration_seconds
from internflow.agent.guard import signature
from internflow.agent.moves import MOVES, REACTIONS, improved_best, unseen_rows
from internflow.agent.planner import PlannerState
from internflow.agent.search_space import SearchSpace
from internflow.recipes import load_recipe
from internflow.schemas import Finding, IterationParams, IterationResult, Proposal

__all__ = ["MOVES", "REACTIONS", "SCREEN_EVAL", "SCREEN_TRAIN", "SCREEN_WIDTH", "SearchPolicy", "signature"]

SCREEN_TRAIN = 0.25  # share of a move's steps a screen trains
SCREEN_EVAL = 0.5  # share of the eval subset a screen is scored on
SCREEN_WIDTH = 3  # screens per round before the best is promoted
TIME_MARGIN = 0.9  # of the time left a proposal may be estimated to take (planning, estimate error)
_SEVERITY = ("error", "warning", "info")  # react to the worst problem first


def _within_bounds(params: IterationParams | None) -> IterationParams | None:
    """model_copy() skips validation: re-validate, and drop a move that leaves the schema."""
    if params is None:
        return None
    try:
        return IterationParams.model_validate(params.model_dump())
    except ValidationError:
        return None


def _latest(state: PlannerState) -> tuple[int, IterationParams, tuple[Finding, ...]] | None:
    """The most recent iteration, finished or failed, with the findings its diagnosis made."""
    finished = state.history[-1] if state.history else None
    failed = state.failures[-1] if state.failures else None
    if failed is not None and (finished is None or failed.index > finished.index):
        return failed.index, failed.params, failed.findings
    if finished is not None:
        return finished.index, finished.params, finished.diagnosis.findings
    return None


# ---------------------------------------------------------------- budget and fidelity -------


@dataclass(frozen=True)
class _Budget:
    """What is left of the campaign's budget, as the planner can tell from its state."""

    iterations: int
    seconds: float | None  # None until an iteration has finished with its time recorded
    history: tuple[IterationResult, ...]

    @classmethod
    def of(cls, state: PlannerState) -> _Budget:
        done = len(state.history) + len(state.failures) + len(state.pending)  # a round's picks are spent
        ends = [r.finished_s for r in state.history if r.finished_s is not None]
        ends += [f.finished_s for f in state.failures if f.finished_s is not None]
        seconds = state.config.time_budget_minutes * 60 - max(ends) if ends else None
        return cls(state.config.max_iterations - done, seconds, state.history)

    def estimate(self, params: IterationParams) -> float | None:
        """The campaign's own estimate (agent/budget.py), so a proposal made here passes its check."""
        return estimate_iteration_seconds(params, list(self.history)) if self.history else None

    def screens_that_fit(self, params: IterationParams) -> int:
        """How many screens of `params` fit before its full run (iterations and time both)."""
        room = self.iterations - 1
        full, screen = self.estimate(params.in_full()), self.estimate(_screen(params))
        if self.seconds is not None and full is not None and screen:
            room = min(room, math.floor((self.seconds * TIME_MARGIN - full) / screen))
        return max(0, room)

    def fit(self, params: IterationParams) -> tuple[IterationParams, str] | None:
        """`params`, shortened when needed to fit the time left (down to a quarter of its steps),
        with a note saying so; None when even that does not fit.  The estimate keeps an
        iteration's fixed costs (evaluation, set-up) whatever its steps: the most steps that fit
        are searched for, not scaled."""
        estimate = self.estimate(params)
        if self.seconds is None or estimate is None or estimate <= self.seconds * TIME_MARGIN:
            return params, ""
        limit = self.seconds * TIME_MARGIN

        def shortened(steps: int) -> IterationParams:
            return params.model_copy(update={"max_steps": steps, "warmup_steps": min(params.warmup_steps, steps // 4)})

        def fits(steps: int) -> bool:
            return (self.estimate(shortened(steps)) or 0.0) <= limit

        low, high = max(1, math.ceil(params.max_steps / 4)), params.max_steps - 1
        if not fits(low):
            return None
        while low < high:  # the most steps that fit: estimates grow with the steps
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(middle) else (low, middle - 1)
        return shortened(low), f"; shortened to {low} steps to fit the {self.seconds / 60:.1f} min left"


def _screen(params: IterationParams) -> IterationParams:
    return params.model_copy(update={"train_fraction": SCREEN_TRAIN, "eval_fraction": SCREEN_EVAL})


def _round(state: PlannerState) -> tuple[list[IterationResult], int]:
    """The screens run since the last full-fidelity iteration (finished ones), and how many were
    attempted in all (failed ones too)."""
    attempts = [(r.index, r.params) for r in state.history] + [(f.index, f.params) for f in state.failures]
    done = len(attempts)
    attempts += [(done + 1 + i, p) for i, p in enumerate(state.pending)]  # this round's picks come next
    last_full = max((i for i, p in attempts if not p.screened), default=0)
    screens = [r for r in state.history if r.index > last_full and r.params.screened]
    return screens, sum(1 for i, p in attempts if i > last_full and p.screened)


def _promotable(state: PlannerState, tried: set[str]) -> IterationResult | None:
    """The round's best healthy screen that gained over the baseline on its items and has not
    been run in full yet (gains are on each screen's own items, compared like with like)."""
    screens, _ = _round(state)
    ready = [
        r
        for r in screens
        if r.diagnosis.verdict != "failed"
        and r.diagnosis.gain_vs_baseline > 0
        and signature(r.params.in_full()) not in tried
    ]
    return max(ready, key=lambda r: r.diagnosis.gain_vs_baseline, default=None)


# ---------------------------------------------------------------- the policy ----------------


@dataclass
class _Search:
    """One planning step's candidates, and why others were left out (for the stop reason)."""

    state: PlannerState
    tried: set[str]
    rejected: set[str]  # the signatures of proposals the guard turned down in this planning step
    space: SearchSpace
    budget: _Budget
    unfit: int = 0
    outside: int = 0

    def add(
        self, found: dict[str, Proposal], params: IterationParams | None, anchor: IterationParams, why: str
    ) -> None:
        # Every candidate passes here (moves, reactions, promotions): one place where a run that
        # continues the best model is given rows that model has not seen.
        params = _within_bounds(params and unseen_rows(params, self.state))
        if params is None:
            return
        key = signature(params)  # the guard's identity: a move it would call a repeat is no new move
        if key in self.tried or key in self.rejected or key in found:
            return
        if not self.space.contains(params, anchor):
            self.outside += 1
            return
        fitted = self.budget.fit(params)
        if fitted is None:
            self.unfit += 1
            return
        params, note = fitted
        found.setdefault(signature(params), Proposal(params=params, rationale=why + note))


class SearchPolicy:
    def propose(self, state: PlannerState) -> Proposal | None:
        options = self.candidates(state)
        return options[0] if options else None

    def candidates(self, state: PlannerState) -> list[Proposal]:
        """Every untried proposal of the current stage, best first: a promotion that is due; else
        reactions and moves as screens (when the budget has room for a whole round) or as full runs;
        else any promotion left.  Empty when nothing is left (see `stop_reason`)."""
        if not state.history and not state.failures and not state.pending:
            params = load_recipe(state.config.model, state.config.recipe, state.default_datasets)
            return [Proposal(params=params, rationale=f"start from recipe {state.config.recipe!r}")]
        search = self._search(state)
        budget, promote = search.budget, _promotable(state, search.tried)
        screens, attempted = _round(state)
        anchor = self._anchors(state)[0][1]
        room = budget.screens_that_fit(anchor)
        # Iterations run side by side screen side by side: a round of N GPUs screens N ideas at once
        # (a full run among unmeasured screens would end their round before any could be promoted).
        width = max(SCREEN_WIDTH, state.config.parallel_iterations)
        # A round starts only with room for SCREEN_WIDTH screens and the full run after them: one
        # started with room for two, its first screen ran long, no second screen fitted, and that one
        # screen was promoted: it had chosen among nothing and cost a third of a run.  A started
        # round goes on while another screen fits (room is counted as if screens ran one by one).
        screening = room >= (1 if attempted else SCREEN_WIDTH) and attempted < width
        if promote is not None and (promote.params.train_fraction == 1.0 or not screening):
            # Due: the round is over, or the screen was trained in full (its promotion only re-scores).
            return self._promotion(search, promote)
        if screening:
            found = self._moves(search, _screen)
            if found:
                return found
            if promote is not None:  # nothing left to screen: promote what the round found
                return self._promotion(search, promote)
        found = self._moves(search, IterationParams.in_full)
        return found or (self._promotion(search, promote) if promote is not None else [])

    def stop_reason(self, state: PlannerState) -> str:
        """Why `propose` has nothing (or 'search: moves remain' when it has)."""
        if self.candidates(state):
            return "search: moves remain"
        search = self._search(state)
        self._moves(search, IterationParams.in_full)
        anchors = self._anchors(state)
        around = (
            f"the {len(anchors)} iteration(s) that beat the baseline"
            if improved_best(state)
            else f"the last attempt (iteration {anchors[0][0]}; none beat the baseline)"
        )
        parts = [f"every move around {around} has run"]
        if search.unfit:
            minutes = (search.budget.seconds or 0) / 60
            parts.append(
                f"{search.unfit} untried move(s) do not fit the {minutes:.1f} min left even at a quarter of their steps"
            )
        if search.outside:
            parts.append(f"{search.outside} would leave the search space")
        return "search exhausted: " + "; ".join(parts)

    # -- internals ------------------------------------------------------------------------

    def propose_batch(self, state: PlannerState, size: int) -> list[Proposal]:
        """Up to `size` distinct proposals for one planning round, best first: each is what
        `propose` would answer with the ones before it already running (screens count towards
        the screen round, at least as wide as the planning round; the budget counts them as spent)."""
        chosen: list[Proposal] = []
        while len(chosen) < size:
            pending = state.pending + tuple(p.params for p in chosen)
            so_far = state.model_copy(update={"pending": pending})
            if chosen and _Budget.of(so_far).iterations <= 0:  # the round may not outrun max_iterations
                break
            proposal = self.propose(so_far)
            if proposal is None:
                break
            chosen.append(proposal)
        return chosen

    @staticmethod
    def _search(state: PlannerState) -> _Search:
        tried = {signature(r.params) for r in state.history} | {signature(f.params) for f in state.failures}
        tried |= {signature(p) for p in state.pending}
        return _Search(state, tried, set(state.rejected), SearchSpace.for_state(state), _Budget.of(state))

    @staticmethod
    def _anchors(state: PlannerState) -> list[tuple[int, IterationParams]]:
        """Where moves start from: the iterations scored in full that beat the baseline, best first;
        when none did, the latest attempt (nothing has worked yet: move on from it)."""
        whole = [
            r
            for r in state.history
            if r.diagnosis.verdict != "failed"
            and r.evaluation.n >= state.baseline.n
            and r.evaluation.accuracy > state.baseline.accuracy
        ]
        if whole:
            return [(r.index, r.params.in_full()) for r in sorted(whole, key=lambda r: -r.evaluation.accuracy)]
        attempts = [(r.index, r.params) for r in state.history] + [(f.index, f.params) for f in state.failures]
        if not attempts:  # the first round: moves around the recipe, which runs alongside them
            return [(0, load_recipe(state.config.model, state.config.recipe, state.default_datasets))]
        index, params = max(attempts, key=lambda a: a[0])
        return [(index, params.in_full())]

    def _moves(self, search: _Search, fidelity: Callable[[IterationParams], IterationParams]) -> list[Proposal]:
        state, found = search.state, dict[str, Proposal]()
        kind = "screen: " if fidelity is _screen else ""
        last = _latest(state)
        if last is not None:
            index, params, findings = last
            params = params.in_full()
            for finding in sorted(findings, key=lambda f: _SEVERITY.index(f.severity)):
                reaction = REACTIONS.get(finding.direction or "")
                if reaction is not None:
                    name, move = reaction
                    candidate = move(params, state)
                    why = f"{kind}{name} after {finding.kind} in iteration {index}: {finding.message}"
                    search.add(found, candidate and fidelity(candidate), params, why)
        for index, anchor in self._anchors(state):
            best = next((r for r in state.history if r.index == index), None)
            where = f"iteration {index}" + (f" ({best.evaluation.accuracy:.1%})" if best else "")
            where = where if index else f"recipe {state.config.recipe!r}"
            for name, move in MOVES:
                candidate = move(anchor, state)
                search.add(found, candidate and fidelity(candidate), anchor, f"{kind}{name}, starting from {where}")
        return list(found.values())

    @staticmethod
    def _promotion(search: _Search, screen: IterationResult) -> list[Proposal]:
        found: dict[str, Proposal] = {}
        gain = screen.diagnosis.gain_vs_baseline
        why = (
            f"promote the best screen, iteration {screen.index} ({screen.evaluation.accuracy:.1%} on its "
            f"{screen.evaluation.n} items, {100 * gain:+.1f} pt over the baseline there), to a full run"
        )
        search.add(found, screen.params.in_full(), screen.params.in_full(), why)
        return list(found.values())
