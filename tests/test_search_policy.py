"""The deterministic search planner, and the planner registry and recipes it starts from."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agent.planner import PlannerState, UnknownPlannerError, get_planner, load_recipe
from agent.search_policy import SearchPolicy, signature
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

BASELINE = 0.3
# The direction the diagnose stage's detectors attach to each kind (internflow.diagnostics).
DIRECTION = {"divergence": "lower_lr", "nan_loss": "lower_lr", "no_learning": "raise_lr"}
DATASETS = ("arithmetic-direct", "arithmetic-worked")


def _eval(accuracy: float) -> EvalResult:
    return EvalResult(
        label="eval", benchmark="arithmetic", accuracy=accuracy, n=200, n_correct=round(accuracy * 200),
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
                          runtime_s=1.0, trackio_project="p", trackio_run=f"run-{index}", checkpoint_dir="c"),
        evaluation=_eval(accuracy),
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


def test_recipe_is_loaded_as_validated_parameters() -> None:
    params = _recipe()
    assert (params.learning_rate, params.max_steps, params.warmup_steps) == (1e-4, 40, 4)
    assert params.datasets == ("arithmetic-direct",) and params.method == "sft"


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
    assert proposal.params.model_copy(update={"learning_rate": 1e-4}) == _recipe()  # only the lr moved
    assert proposal.rationale.startswith(f"lower the learning rate after {kind} in iteration 1")


def test_after_a_flat_loss_the_learning_rate_is_raised() -> None:
    proposal = SearchPolicy().propose(_state([_result(1, _recipe(), BASELINE, "no_learning")]))
    assert proposal is not None and proposal.params.learning_rate == pytest.approx(3e-4)


def test_continuing_the_best_model_is_proposed_only_after_beating_the_baseline() -> None:
    flat = SearchPolicy().propose(_state([_result(1, _recipe(), BASELINE)]))
    assert flat is not None and flat.params.init_from == "base"
    better = SearchPolicy().propose(_state([_result(1, _recipe(), 0.6)]))
    assert better is not None and better.params.init_from == "best"


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
    from agent.search_policy import _add_dataset, _switch_method

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
