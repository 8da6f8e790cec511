"""The deterministic search planner, and the planner registry and recipes it starts from."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from internflow.agent.moves import unseen_rows
from internflow.agent.planner import PlannerState
from internflow.agent.registry import UnknownPlannerError, get_planner
from internflow.agent.search_policy import MOVES, SearchPolicy, signature
from internflow.recipes import load_recipe
from internflow.schemas import (
    CampaignConfig,
    Diagnosis,
    EvalResult,
    FailedIteration,
    Finding,
    IterationParams,
    IterationResult,
    LiteratureReport,
    PreparedDataset,
    TrainResult,
)
from internflow.training.arguments import trl_arguments

BASELINE = 0.3
# The direction the diagnose stage's detectors attach to each kind (internflow.diagnostics).
DIRECTION = {"divergence": "lower_lr", "nan_loss": "lower_lr", "no_learning": "raise_lr"}
DATASETS = ("arithmetic-direct", "arithmetic-worked")


def _eval(accuracy: float, n: int = 200) -> EvalResult:
    return EvalResult(
        label="eval", benchmark="arithmetic", accuracy=accuracy, n=n, n_correct=round(accuracy * n),
        ci_low=0.0, ci_high=1.0, unparseable=0, samples_path="samples.jsonl", runtime_s=1.0, split="dev",
    )  # fmt: skip


def _result(index: int, params: IterationParams, accuracy: float = BASELINE, *kinds: str) -> IterationResult:
    """A finished iteration with the given score and diagnosis findings."""
    verdict = "failed" if "nan_loss" in kinds else "improved" if accuracy > BASELINE + 0.1 else "no_change"
    findings = tuple(
        Finding(kind=kind, severity="error", message=kind, direction=DIRECTION.get(kind))  # type: ignore[arg-type]
        for kind in kinds
    )
    return IterationResult(
        index=index, params=params,
        literature=LiteratureReport(query="q", status="offline"),
        data=PreparedDataset(path="train.jsonl", rows=8, sources=(), fingerprint="f"),
        train=TrainResult(model_path=f"model-{index}", steps=params.max_steps, losses=(), final_loss=None,
                          runtime_s=60.0, trackio_project="p", trackio_run=f"run-{index}", checkpoint_dir="c"),
        evaluation=_eval(accuracy, round(200 * params.eval_fraction)),  # a screen is scored on fewer items
        diagnosis=Diagnosis(verdict=verdict, gain_vs_baseline=accuracy - BASELINE, gain_vs_best=None,
                            findings=findings),
        wall_s=60.0,
    )  # fmt: skip


def _state(history: Sequence[IterationResult] = (), failures: Sequence[FailedIteration] = ()) -> PlannerState:
    return PlannerState(
        config=CampaignConfig(), baseline=_eval(BASELINE), history=tuple(history), failures=tuple(failures),
        datasets=DATASETS, default_datasets=("arithmetic-direct",),
    )  # fmt: skip


def _recipe() -> IterationParams:
    return load_recipe("smollm2-135m", "sft/default", ("arithmetic-direct",))


def _forty_steps() -> IterationParams:
    """An SFT run of 40 steps (the recipe's length when the time figures below were measured)."""
    return _recipe().model_copy(update={"max_steps": 40})


def test_recipe_is_loaded_as_validated_parameters() -> None:
    params = _recipe()
    assert (params.learning_rate, params.max_steps, params.warmup_steps) == (2e-5, 60, 0)
    assert params.datasets == ("arithmetic-direct",) and params.method == "sft"


def test_recipe_decayed_to_zero_before_its_rows_were_seen_once(tmp_path) -> None:
    # The old recipe's cosine took 1e-4 to zero over 40 steps of 8 of its 480 rows; on the dev
    # split of syllogism it scored 11 points less than a constant 2e-5 over one epoch (gcd: 6.5; LOG.md,
    # 2026-11-30).  Walk the scheduler TRL's Trainer.create_scheduler builds from the recipe's config.
    import torch
    from transformers import get_scheduler

    from internflow.training.sft import SFTRecipeConfig

    params = _recipe()
    config = SFTRecipeConfig(**trl_arguments(params), output_dir=str(tmp_path), use_cpu=True)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    scheduler = get_scheduler(
        config.lr_scheduler_type,
        optimizer,
        num_warmup_steps=config.get_warmup_steps(config.max_steps),
        num_training_steps=config.max_steps,
        scheduler_specific_kwargs=config.lr_scheduler_kwargs,
    )
    rates = []
    for _ in range(config.max_steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[-1] >= params.learning_rate / 2  # the last step still learns
    rows_per_step = params.per_device_train_batch_size * params.gradient_accumulation_steps
    assert params.max_steps * rows_per_step == params.max_train_samples  # one epoch over its rows


def test_a_model_without_its_own_recipe_falls_back_to_the_default_folder() -> None:
    params = load_recipe("HuggingFaceTB/SmolLM2-360M", "sft/smoke", ("arithmetic-direct",))
    assert (params.learning_rate, params.max_steps) == (1e-3, 8)


def test_unknown_recipe_lists_the_known_recipes() -> None:
    with pytest.raises(ValueError, match="'sft/nope'") as caught:
        load_recipe("smollm2-135m", "sft/nope", ("arithmetic-direct",))
    for known in ("smollm2-135m/sft/config_default.yaml", "default/sft/config_smoke.yaml"):
        assert known in str(caught.value)


def test_unknown_planner_names_the_known_ones() -> None:
    with pytest.raises(UnknownPlannerError, match="'oracle'.*known: search"):
        get_planner(CampaignConfig(planner="oracle"))


def test_the_search_planner_is_registered() -> None:
    assert isinstance(get_planner(CampaignConfig()), SearchPolicy)


def test_first_proposal_is_the_recipe() -> None:
    proposal = SearchPolicy().propose(_state())
    assert proposal is not None
    assert proposal.params == _recipe()
    assert "sft/default" in proposal.rationale


@pytest.mark.parametrize("kind", ["divergence", "nan_loss"])
def test_after_a_diverged_iteration_the_learning_rate_is_lowered(kind: str) -> None:
    proposal = SearchPolicy().propose(_state([_result(1, _recipe(), BASELINE, kind)]))
    assert proposal is not None
    assert proposal.params.learning_rate == pytest.approx(_recipe().learning_rate / 3)
    assert proposal.params.model_copy(update={"learning_rate": _recipe().learning_rate}) == _recipe()  # only lr
    assert proposal.rationale.startswith(f"lower the learning rate after {kind} in iteration 1")


def test_after_a_flat_loss_the_learning_rate_is_raised() -> None:
    proposal = SearchPolicy().propose(_state([_result(1, _recipe(), BASELINE, "no_learning")]))
    assert proposal is not None and proposal.params.learning_rate == pytest.approx(3 * _recipe().learning_rate)


def test_continuing_the_best_model_is_proposed_only_after_beating_the_baseline() -> None:
    flat = SearchPolicy().propose(_state([_result(1, _recipe(), BASELINE)]))
    assert flat is not None and flat.params.init_from == "base"
    better = SearchPolicy().propose(_state([_result(1, _recipe(), 0.6)]))
    assert better is not None and better.params.init_from == "best"


def test_a_continuation_of_a_continuation_was_no_new_proposal() -> None:
    # Continuing the best model trained on the rows it had seen, and once the best model was itself
    # a continuation the same move had the same parameters: the chain stopped after one link.
    first = _result(1, _recipe(), 0.5)
    second = _result(2, _recipe().model_copy(update={"init_from": "best", "data_shard": 1}), 0.6)
    proposal = SearchPolicy().propose(_state([first, second]))
    assert proposal is not None
    assert (proposal.params.init_from, proposal.params.data_shard) == ("best", 2)
    assert proposal.rationale.startswith("continue training the best model on rows it has not seen")


def test_a_reaction_on_a_continuation_retrained_the_rows_the_best_model_had_seen() -> None:
    continued = _recipe().model_copy(update={"init_from": "best", "data_shard": 1})
    history = [_result(1, _recipe(), 0.5), _result(2, continued, 0.6, "divergence")]
    proposal = SearchPolicy().propose(_state(history))
    assert proposal is not None and proposal.rationale.startswith("lower the learning rate after divergence")
    assert (proposal.params.init_from, proposal.params.data_shard) == ("best", 2)


def test_a_failed_first_iteration_is_not_proposed_again() -> None:
    failed = FailedIteration(index=1, params=_recipe(), error="RuntimeError: out of memory")
    proposal = SearchPolicy().propose(_state(failures=[failed]))
    assert proposal is not None and signature(proposal.params) != signature(_recipe())


def test_an_out_of_memory_failure_is_answered_with_lora() -> None:
    oom = Finding(kind="out_of_memory", severity="error", message="OOM at batch 1", direction="use_lora")
    failed = FailedIteration(index=1, params=_recipe(), error="out of memory", findings=(oom,))

    proposal = SearchPolicy().propose(_state(failures=[failed]))

    assert proposal is not None and proposal.params.use_lora and "out_of_memory" in proposal.rationale


def test_a_new_seed_alone_is_not_a_new_proposal() -> None:
    assert signature(_recipe()) == signature(_recipe().model_copy(update={"seed": 5}))
    assert signature(_recipe()) != signature(_recipe().model_copy(update={"max_steps": 41}))


def test_the_guard_and_the_search_policy_agree_on_what_the_same_proposal_is() -> None:
    """Regression: the policy's own signature (every field but the seed, exactly) called a proposal
    new that the guard's called a repeat (the same mix listed in another order, an unused LoRA
    rank), so the policy proposed runs the guard then turned down."""
    from internflow.agent import guard, search_policy

    mixed = _recipe().model_copy(update={"datasets": DATASETS, "lora_r": 64})
    reordered = _recipe().model_copy(update={"datasets": DATASETS[::-1]})
    assert guard.signature(mixed) == guard.signature(reordered)
    assert search_policy.signature(mixed) == search_policy.signature(reordered)
    assert search_policy.signature is guard.signature


def test_proposals_never_repeat_and_the_search_runs_out() -> None:
    # A campaign where nothing clearly works: failures, diverged and flat runs, one modest gain.
    policy, seen = SearchPolicy(), []
    history: list[IterationResult] = []
    failures: list[FailedIteration] = []
    for round_no in range(1, 51):
        proposal = policy.propose(_state(history, failures))
        if proposal is None:
            break
        seen.append(signature(proposal.params))
        if round_no % 4 == 3:
            failures.append(FailedIteration(index=round_no, params=proposal.params, error="RuntimeError: boom"))
        elif round_no % 4 == 1:
            history.append(_result(round_no, proposal.params, BASELINE, "divergence"))
        else:
            history.append(_result(round_no, proposal.params, 0.45 if round_no == 2 else BASELINE))
    else:
        pytest.fail("the search policy kept proposing for 50 rounds")
    assert len(seen) == len(set(seen)) > 5


def test_proposals_stay_inside_the_parameter_bounds_after_many_improvements() -> None:
    # The planner's output is IterationParams: every proposal must pass its own validation, even
    # after a long run of improvements keeps stretching max_steps (model_copy does not validate).
    policy = SearchPolicy()
    history: list[IterationResult] = []
    for round_no in range(1, 51):
        proposal = policy.propose(_state(history))
        if proposal is None:
            break
        IterationParams.model_validate(proposal.params.model_dump())
        history.append(_result(round_no, proposal.params, min(0.99, BASELINE + 0.01 * round_no)))


def test_data_moves_only_pick_datasets_that_can_train_the_method() -> None:
    from internflow.agent.moves import _add_dataset, _switch_method

    state = _state().model_copy(
        update={
            "datasets": ("arithmetic-direct", "arithmetic-prompts", "arithmetic-preference"),
            "datasets_by_method": {
                "sft": ("arithmetic-direct",),
                "dpo": ("arithmetic-preference",),
                "grpo": ("arithmetic-prompts",),
            },
        }
    )
    sft = IterationParams(datasets=("arithmetic-direct",))

    assert _add_dataset(sft, state) is None  # nothing else can train SFT
    switched = _switch_method(sft, state)
    assert switched is not None and switched.method == "dpo" and switched.datasets == ("arithmetic-preference",)


def test_after_a_screen_the_search_policy_scores_on_the_whole_subset_again() -> None:
    screen = _recipe().model_copy(update={"eval_fraction": 0.5})
    result = _result(1, screen, 0.9)
    result = result.model_copy(update={"evaluation": result.evaluation.model_copy(update={"n": 100})})
    proposal = SearchPolicy().propose(_state([result]))
    assert proposal is not None and proposal.params.eval_fraction == 1.0
    assert _state([result]).best_iteration() is None, "0.9 on the first 100 items is not comparable"


# ---------------------------------------------------------------- one search space, every move


def _timed(result: IterationResult, finished_s: float, wall_s: float = 60.0, eval_s: float = 0.0) -> IterationResult:
    """`result` finished at `finished_s` into the campaign, after `wall_s` seconds of which
    `eval_s` were its evaluation and the rest training."""
    train = result.train.model_copy(update={"runtime_s": wall_s - eval_s})
    evaluation = result.evaluation.model_copy(update={"runtime_s": eval_s})
    return result.model_copy(
        update={"finished_s": finished_s, "wall_s": wall_s, "train": train, "evaluation": evaluation}
    )


def _campaign(history: Sequence[IterationResult], minutes: float = 30, iterations: int = 12) -> PlannerState:
    """A campaign with room for several runs (by default), on data every method can use."""
    return _state(history).model_copy(
        update={
            "config": CampaignConfig(time_budget_minutes=minutes, max_iterations=iterations),
            "datasets": (*DATASETS, "arithmetic-prompts"),
            "datasets_by_method": {"sft": DATASETS, "grpo": ("arithmetic-prompts", "arithmetic-direct")},
        }
    )


def _full_candidates(state: PlannerState) -> list[IterationParams]:
    """Every move around the anchor as a full run (a campaign with room for one more run)."""
    state = state.model_copy(update={"config": CampaignConfig(time_budget_minutes=60, max_iterations=2)})
    return [p.params for p in SearchPolicy().candidates(state)]


def test_every_move_of_the_search_policy_is_one_the_llm_planner_can_make() -> None:
    from internflow.agent.llm_planner import anchor_params
    from internflow.agent.search_space import PlannerOutput, SearchSpace

    state = _campaign([_result(1, _recipe().model_copy(update={"use_lora": True}), 0.6)])
    anchor, space = anchor_params(state), SearchSpace.for_state(state)
    candidates = _full_candidates(state)
    assert len(candidates) >= 10
    for params in candidates:
        changes = {k: v for k, v in params.model_dump(mode="json").items() if v != anchor.model_dump(mode="json")[k]}
        answer = PlannerOutput.model_validate({**changes, "rationale": "the same move, written by an LLM"})
        assert space.apply(anchor, answer) == params, changes


def test_the_repertoire_covers_every_dimension_the_issue_names() -> None:
    anchor = _recipe()
    mixed_lora = anchor.model_copy(update={"use_lora": True, "datasets": DATASETS})
    changed: set[str] = set()
    for start in (anchor, mixed_lora):
        for params in _full_candidates(_campaign([_result(1, start, 0.6)])):
            changed |= {k for k, v in params.model_dump().items() if v != start.model_dump()[k]}
    for dimension in ("learning_rate", "lr_scheduler_type", "max_steps", "max_train_samples", "init_from",
                      "use_lora", "lora_r", "completion_only_loss", "datasets", "dataset_weights", "method",
                      "self_distill_k"):  # fmt: skip
        assert dimension in changed, dimension


def test_self_distillation_samples_the_best_model_with_the_recipes_settings() -> None:
    state = _campaign([_result(1, _recipe(), 0.6)])
    distilled = [p for p in _full_candidates(state) if p.self_distill_k]
    recipe = load_recipe("smollm2-135m", "sft/self-distill", ("arithmetic-direct",))

    assert len(distilled) == 1 and distilled[0].init_from == "best" and distilled[0].method == "sft"
    assert (distilled[0].self_distill_k, distilled[0].self_distill_temperature) == (4, 0.8) == (
        recipe.self_distill_k, recipe.self_distill_temperature)  # fmt: skip
    assert distilled[0].learning_rate == _recipe().learning_rate, "only the distillation changes"


def test_a_model_that_rarely_answers_right_is_not_distilled_nor_trained_with_grpo() -> None:
    weak = _campaign([_result(1, _recipe(), 0.05)]).model_copy(update={"baseline": _eval(0.02)})
    assert not [p for p in _full_candidates(weak) if p.self_distill_k or p.method == "grpo"]


def test_a_model_that_answered_15_to_every_item_is_not_distilled_nor_trained_with_grpo_from_it() -> None:
    # count_bits: the best model scored 17% by answering "15" every time; its accepted answers are all
    # "15", and GRPO would reward that same guess (GRPO from the base model, which answers, is another move).
    collapsed = _result(1, _recipe(), 0.6, "answer_collapse")
    found = _full_candidates(_campaign([collapsed]))
    assert not [p for p in found if p.self_distill_k or (p.method == "grpo" and p.init_from == "best")]
    assert [p for p in found if p.init_from == "best" and not p.self_distill_k], "continuations stay"


def test_grpo_is_rewarded_by_the_tasks_own_judge_from_the_best_model() -> None:
    state = _campaign([_result(1, _recipe(), 0.6)])
    grpo = [p for p in _full_candidates(state) if p.method == "grpo"]

    assert grpo and grpo[0].reward_funcs[0] == "exact_answer" and grpo[0].init_from == "best"
    assert grpo[0].datasets == ("arithmetic-direct",), "the anchor's data, which GRPO can read, is kept"
    assert grpo[0].learning_rate == load_recipe("smollm2-135m", "grpo/default", ()).learning_rate


# ---------------------------------------------------------------- multi-fidelity and budget


def test_with_room_for_a_round_moves_are_screened_first() -> None:
    proposal = SearchPolicy().propose(_campaign([_timed(_result(1, _recipe(), 0.6), 70)]))

    assert proposal is not None and proposal.params.screened
    assert (proposal.params.train_fraction, proposal.params.eval_fraction) == (0.25, 0.5)
    assert proposal.params.in_full() == _recipe().model_copy(update={"init_from": "best", "data_shard": 1})
    assert proposal.rationale.startswith("screen: continue training the best model")


def test_with_room_for_one_more_run_it_is_a_full_run() -> None:
    by_count = SearchPolicy().propose(_campaign([_timed(_result(1, _recipe(), 0.6), 70)], iterations=2))
    # 95 s left: room for the 60-s full run, not for a round of 15-s screens before it (10 % kept in reserve).
    by_time = SearchPolicy().propose(_campaign([_timed(_result(1, _recipe(), 0.6), 30 * 60 - 95)]))
    assert by_count is not None and not by_count.params.screened
    assert by_time is not None and not by_time.params.screened


def test_a_screen_round_of_one_chose_among_nothing() -> None:
    # The bench's gcd campaign: room for two screens and the run after them started a round, its
    # first screen ran long, and that one screen was promoted: it had chosen among nothing.  A round
    # now starts only with room for all SCREEN_WIDTH screens (15 s each) and the 60-s full run.
    def first_move(seconds_left: float) -> IterationParams:
        proposal = SearchPolicy().propose(_campaign([_timed(_result(1, _recipe(), 0.6), 30 * 60 - seconds_left)]))
        assert proposal is not None
        return proposal.params

    # Screens that fit: (90 % of the time left - the full run) / a screen: (99 - 60) / 15 → 2, (108 - 60) / 15 → 3.
    two_fit, three_fit = first_move(110), first_move(120)

    assert not two_fit.screened and two_fit == _recipe().model_copy(update={"init_from": "best", "data_shard": 1})
    assert three_fit.screened and three_fit.in_full() == two_fit


def test_after_a_round_of_screens_the_best_screen_is_promoted_to_a_full_run() -> None:
    policy, history = SearchPolicy(), [_timed(_result(1, _recipe(), 0.6), 70)]
    for index, accuracy in ((2, 0.55), (3, 0.7), (4, 0.5)):
        screen = policy.propose(_campaign(history))
        assert screen is not None and screen.params.screened, index
        history.append(_timed(_result(index, screen.params, accuracy), 70 + 20 * index, wall_s=20))

    promotion = policy.propose(_campaign(history))

    assert promotion is not None and promotion.params == history[2].params.in_full()
    assert promotion.rationale.startswith("promote the best screen, iteration 3")
    history.append(_timed(_result(5, promotion.params, 0.75), 200))
    next_round = policy.propose(_campaign(history))
    assert next_round is not None and next_round.params.screened and "iteration 5" in next_round.rationale


def test_a_promotion_after_a_stalled_round_passes_the_guard() -> None:
    from internflow.agent.digest import records_from_results
    from internflow.agent.guard import DoomLoopGuard

    policy, history = SearchPolicy(), [_timed(_result(1, _recipe(), 0.6), 70)]
    for index in (2, 3, 4):
        screen = policy.propose(_campaign(history))
        assert screen is not None
        history.append(_timed(_result(index, screen.params, 0.5), 70 + 20 * index, wall_s=20))
    promotion = policy.propose(_campaign(history))
    assert promotion is not None and not promotion.params.screened

    assert DoomLoopGuard().review(promotion.params, records_from_results(history, []), BASELINE).ok


def test_a_run_that_would_overrun_the_time_left_is_shortened_to_fit() -> None:
    # 12 min budget, 11.2 spent: 48 s left, the 40-step run took 60 s.
    proposal = SearchPolicy().propose(_campaign([_timed(_result(1, _forty_steps(), 0.6), 12 * 60 - 48)], minutes=12))

    assert proposal is not None and proposal.params.max_steps == 28 and not proposal.params.screened
    assert "shortened to 28 steps to fit the 0.8 min left" in proposal.rationale


def test_a_run_shortened_to_fit_keeps_its_evaluation_time_and_does_not_overrun() -> None:
    # count_primes, bench/campaign_value.py seed 9649: 40 steps took 223 s, 60 s of them evaluating;
    # with 74 s left the run was cut to 11 steps as if all 223 s scaled with the steps, took 113 s
    # and overran the budget.  The evaluation stays whatever the steps: 163 s for 40 steps of
    # training is 4.1 s a step, and 0.9 × 74 s - 60 s leaves room for 1 step, under a quarter of 40.
    late = _campaign([_timed(_result(1, _forty_steps(), 0.6), 10 * 60 - 74, wall_s=223, eval_s=60)], minutes=10)
    assert SearchPolicy().propose(late) is None
    # With 150 s left: 0.9 × 150 - 60 = 75 s of training, 18 steps.
    later = _campaign([_timed(_result(1, _forty_steps(), 0.6), 10 * 60 - 150, wall_s=223, eval_s=60)], minutes=10)
    proposal = SearchPolicy().propose(later)
    assert proposal is not None and proposal.params.max_steps == 18
    assert "shortened to 18 steps to fit the 2.5 min left" in proposal.rationale


def test_when_nothing_fits_the_time_left_the_policy_stops_and_says_so() -> None:
    state = _campaign([_timed(_result(1, _recipe(), 0.6), 12 * 60 - 10)], minutes=12)

    assert SearchPolicy().propose(state) is None
    reason = SearchPolicy().stop_reason(state)
    assert reason.startswith("search exhausted: every move around the 1 iteration(s) that beat the baseline")
    assert "do not fit the 0.2 min left even at a quarter of their steps" in reason


def test_the_policy_never_stops_while_a_move_is_untried_and_then_says_why() -> None:
    policy, history = SearchPolicy(), [_result(1, _recipe(), 0.6)]
    while (proposal := policy.propose(_state(history))) is not None:
        history.append(_result(len(history) + 1, proposal.params, BASELINE))  # nothing beats iteration 1 again
        assert len(history) < 40

    state, anchor = _state(history), _recipe()
    moves = [m and unseen_rows(m, state) for m in (move(anchor, state) for _, move in MOVES)]  # as the policy adds them
    tried = {signature(r.params) for r in history}
    assert all(signature(m) in tried for m in moves if m is not None), "it stopped with a move untried"
    assert (
        policy.stop_reason(state)
        == "search exhausted: every move around the 1 iteration(s) that beat the baseline has run"
    )


def test_a_move_the_guard_turned_down_is_not_proposed_again() -> None:
    from internflow.agent.guard import signature as guard_signature

    state = _state([_result(1, _recipe(), 0.6)])
    first = SearchPolicy().propose(state)
    assert first is not None
    again = SearchPolicy().propose(state.model_copy(update={"rejected": (guard_signature(first.params),)}))
    assert again is not None and signature(again.params) != signature(first.params)


# ---------------------------------------------------------------- rounds (parallel_iterations) ------


def _with(state: PlannerState, **config: object) -> PlannerState:
    return state.model_copy(update={"config": CampaignConfig.model_validate(config)})


def test_a_round_is_distinct_proposals_and_the_first_one_starts_from_the_recipe() -> None:
    """Regression guard for parallel rounds: a second GPU never trains the same thing twice, and the
    first round does not idle it (moves around the recipe run beside the recipe)."""
    state = _with(_state(), max_iterations=10, parallel_iterations=3)
    round_ = SearchPolicy().propose_batch(state, 3)
    assert len(round_) == 3 and len({signature(p.params) for p in round_}) == 3
    assert round_[0].params == _recipe()
    assert all("starting from recipe 'sft/default'" in p.rationale for p in round_[1:])


def test_a_round_never_outruns_the_iteration_budget() -> None:
    state = _with(_state([_result(1, _recipe(), 0.5)]), max_iterations=3)
    assert len(SearchPolicy().propose_batch(state, 4)) == 2  # 1 done + 2 = the 3 allowed


def test_screens_picked_for_one_round_count_towards_its_screen_width() -> None:
    from internflow.agent.search_policy import SCREEN_WIDTH

    history = [_result(1, _recipe(), 0.5)]
    narrow = _with(_state(history), max_iterations=20)
    assert [p.params.screened for p in SearchPolicy().propose_batch(narrow, SCREEN_WIDTH)] == [True] * SCREEN_WIDTH
    after = SearchPolicy().propose(narrow.model_copy(update={"pending": (_screen_of(history),) * SCREEN_WIDTH}))
    assert after is not None and not after.params.screened, "the round's screens are spent: a full run"


def test_a_round_wider_than_the_screen_width_screens_every_slot() -> None:
    """Regression: the fourth slot of a 5-GPU round was a full run, which closed the screen round before
    its three screens were measured, so none of them could ever be promoted."""
    from internflow.agent.search_policy import SCREEN_WIDTH

    state = _with(_state([_result(1, _recipe(), 0.5)]), max_iterations=20, parallel_iterations=SCREEN_WIDTH + 2)
    round_ = SearchPolicy().propose_batch(state, SCREEN_WIDTH + 2)
    assert [p.params.screened for p in round_] == [True] * (SCREEN_WIDTH + 2), [p.rationale for p in round_]
    assert len({signature(p.params) for p in round_}) == len(round_)


def _screen_of(history: list[IterationResult]) -> IterationParams:
    return history[0].params.model_copy(update={"train_fraction": 0.25, "eval_fraction": 0.5})


def test_a_proposal_running_in_the_round_is_never_proposed_again() -> None:
    state = _with(_state([_result(1, _recipe(), 0.5)]), max_iterations=10)
    first = SearchPolicy().propose(state)
    assert first is not None
    second = SearchPolicy().propose(state.model_copy(update={"pending": (first.params,)}))
    assert second is not None and signature(second.params) != signature(first.params)
