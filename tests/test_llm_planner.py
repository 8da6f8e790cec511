"""The LLM planners and the plan task, with scripted smolagents models (canned responses)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from smolagents import ChatMessage, MessageRole, Model
from smolagents.models import ChatMessageToolCall, ChatMessageToolCallFunction

from internflow.agent.backends import LikelihoodScorer, parse_openai_spec
from internflow.agent.guard import signature
from internflow.agent.llm_planner import BundledPlanner, LLMPlanner, SearchSpace, parse_output
from internflow.agent.planner import PlannerState
from internflow.agent.registry import PLANNERS, UnknownPlannerError, get_planner
from internflow.agent.search_policy import SearchPolicy
from internflow.schemas import CampaignConfig, FailedIteration, IterationParams, IterationResult
from tests.test_search_policy import _eval, _result

DATASETS = ("arithmetic-direct", "arithmetic-worked")


def call(name: str, arguments: dict[str, object]) -> ChatMessage:
    function = ChatMessageToolCallFunction(name=name, arguments=arguments)
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content=None,
        tool_calls=[ChatMessageToolCall(id=uuid.uuid4().hex[:8], type="function", function=function)],
    )


def answer(payload: object) -> ChatMessage:
    return call("final_answer", {"answer": payload if isinstance(payload, str) else json.dumps(payload)})


class ScriptedModel(Model):
    """Replies with canned messages in order (the last one repeats); keeps every prompt it saw."""

    def __init__(self, replies: Sequence[ChatMessage]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)
        self.prompts: list[str] = []

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs):  # type: ignore[no-untyped-def]
        self.prompts.append(
            "\n".join(
                str(part.get("text", "")) if isinstance(part, dict) else str(part)
                for m in messages
                for part in (m.content if isinstance(m.content, list) else [m.content or ""])
            )
        )
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def make_state(
    history: Sequence[IterationResult] = (), failures: Sequence[FailedIteration] = (), planner: str = "search"
) -> PlannerState:
    return PlannerState(
        config=CampaignConfig(planner=planner, time_budget_minutes=60), baseline=_eval(0.3),
        history=tuple(history), failures=tuple(failures), datasets=DATASETS,
        default_datasets=("arithmetic-direct",), digest="#1 sft|... → acc 40.0% (DIGEST-MARKER)",
    )  # fmt: skip


ONE_RUN = (_result(1, IterationParams(learning_rate=1e-4, max_steps=40), 0.45),)


def test_valid_proposal_becomes_validated_parameters_with_rationale_and_evidence() -> None:
    model = ScriptedModel(
        [answer({"learning_rate": 2e-4, "max_steps": 90, "rationale": "loss still falling", "evidence": ["#1"]})]
    )
    proposal = LLMPlanner(model, "scripted").propose(make_state(ONE_RUN))
    assert proposal is not None
    assert (proposal.params.learning_rate, proposal.params.max_steps) == (2e-4, 90)
    assert proposal.params.datasets == ("arithmetic-direct",)  # unset fields keep the anchor's value
    assert proposal.rationale == "loss still falling" and proposal.evidence == ("#1",)
    assert proposal.source == "scripted"
    assert "DIGEST-MARKER" in model.prompts[0] and "learning_rate: 1e-06 to 0.001" in model.prompts[0]


def test_an_llm_continuation_retrained_the_rows_the_best_model_had_seen() -> None:
    # Iteration 1 beat the baseline; "continue from it" kept its shard, a second epoch over its rows.
    state = make_state(ONE_RUN)
    model = ScriptedModel([answer({"init_from": "best", "rationale": "keep going"})])
    proposal = LLMPlanner(model, "scripted").propose(state)
    assert proposal is not None and (proposal.params.init_from, proposal.params.data_shard) == ("best", 1)
    chosen = ScriptedModel([answer({"init_from": "best", "data_shard": 0, "rationale": "another epoch"})])
    again = LLMPlanner(chosen, "scripted").propose(state)
    assert again is not None and again.params.data_shard == 0  # a shard the planner names is kept


def test_invalid_json_is_repaired_once() -> None:
    model = ScriptedModel([answer("{'learning_rate': oops}"), answer({"max_steps": 60, "rationale": "fixed"})])
    proposal = LLMPlanner(model, "scripted").propose(make_state(ONE_RUN))
    assert proposal is not None and proposal.source == "scripted" and proposal.params.max_steps == 60
    assert "could not be used" in model.prompts[-1] and "invalid JSON" in model.prompts[-1]


def test_invalid_twice_falls_back_to_the_search_policy_with_the_reason() -> None:
    model = ScriptedModel([answer("I think more steps"), answer({"base_model": "gpt2", "rationale": "bigger"})])
    state = make_state(ONE_RUN)
    proposal = LLMPlanner(model, "scripted").propose(state)
    expected = SearchPolicy().propose(state)
    assert proposal is not None and expected is not None
    assert proposal.params == expected.params and proposal.source == "search (fallback)"
    assert "no JSON object" in proposal.rationale and "base_model" in proposal.rationale


def test_a_model_that_raises_falls_back_too() -> None:
    class Broken(Model):
        def generate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise ConnectionError("endpoint down")

    proposal = LLMPlanner(Broken(), "broken").propose(make_state(ONE_RUN))
    assert proposal is not None and proposal.source == "search (fallback)" and "endpoint down" in proposal.rationale


def test_out_of_space_values_are_refused_naming_the_field() -> None:
    space = SearchSpace(datasets=DATASETS)
    anchor = IterationParams()
    with pytest.raises(ValueError, match="learning_rate: 0.5 is outside"):
        space.apply(anchor, parse_output('{"learning_rate": 0.5, "rationale": "go big"}'))
    with pytest.raises(ValueError, match=r"datasets: \['gsm8k'\] not in the catalog"):
        space.apply(anchor, parse_output({"datasets": ["gsm8k"], "rationale": "r"}))
    with pytest.raises(ValueError, match="method: 'ppo' is not one of"):
        space.apply(anchor, parse_output({"method": "ppo", "rationale": "r"}))


def test_the_planner_may_screen_on_part_of_the_eval_subset_within_bounds() -> None:
    space = SearchSpace(datasets=DATASETS)
    params = space.apply(IterationParams(), parse_output({"eval_fraction": 0.5, "rationale": "screen it"}))
    assert params.eval_fraction == 0.5
    with pytest.raises(ValueError, match="eval_fraction: 0.05 is outside 0.25..1"):
        space.apply(IterationParams(), parse_output({"eval_fraction": 0.05, "rationale": "r"}))


def test_agent_uses_the_campaign_digest_tool_before_answering() -> None:
    model = ScriptedModel([call("campaign_digest", {}), answer({"warmup_steps": 0, "rationale": "digest read"})])
    proposal = LLMPlanner(model, "scripted").propose(make_state(ONE_RUN))
    assert proposal is not None and proposal.params.warmup_steps == 0
    assert "DIGEST-MARKER" in model.prompts[1].split("campaign_digest", 1)[-1]  # the tool's observation


def test_planner_registry_parses_specs_and_refuses_bad_ones() -> None:
    assert parse_openai_spec("http://127.0.0.1:8000/v1:qwen2.5:0.5b") == ("http://127.0.0.1:8000/v1", "qwen2.5:0.5b")
    assert isinstance(get_planner(CampaignConfig(planner="openai:http://127.0.0.1:1/v1:m")), LLMPlanner)
    assert isinstance(get_planner(CampaignConfig(planner="bundled")), BundledPlanner)
    with pytest.raises(UnknownPlannerError, match="openai:<base_url>:<model>"):
        get_planner(CampaignConfig(planner="openai:nohost"))
    with pytest.raises(UnknownPlannerError, match="known: search, bundled, openai, hf, litellm, transformers"):
        get_planner(CampaignConfig(planner="gpt:4"))


def test_bundled_planner_ranks_valid_untried_candidates_with_a_real_model(tiny_model: Path) -> None:
    planner = BundledPlanner(LikelihoodScorer(str(tiny_model)))
    state = make_state(ONE_RUN)
    proposal = planner.propose(state)
    assert proposal is not None and proposal.source == "bundled"
    candidates = {signature(c.params) for c in planner.candidates(state)}
    assert signature(proposal.params) in candidates and signature(ONE_RUN[0].params) not in candidates
    at_the_edge = make_state((_result(1, IterationParams(learning_rate=1e-3), 0.45),))
    assert all(c.params.learning_rate <= 1e-3 for c in planner.candidates(at_the_edge))  # the space's bound
    assert "log-likelihood" in proposal.evidence[0]
    scores = planner.scorer.score("Which change?", ["double the learning rate", "train 1.5x longer"])
    assert len(scores) == 2 and all(s < 0 for s in scores) and scores[0] != scores[1]
    long_context = planner.scorer.score("12 + 7 = 19. " * 400, ["double the learning rate"])  # > 512 positions
    assert len(long_context) == 1 and long_context[0] < 0
    rejected = state.model_copy(update={"rejected": (signature(proposal.params),)})
    again = planner.propose(rejected)
    assert again is not None and signature(again.params) != signature(proposal.params)


# ---------------------------------------------------------------- the plan task + guard ----


@pytest.fixture
def scripted_planner(monkeypatch: pytest.MonkeyPatch):
    """Registers a 'scripted' planner kind whose model replies with the given messages."""

    def register(replies: Sequence[ChatMessage]) -> ScriptedModel:
        model = ScriptedModel(replies)
        monkeypatch.setitem(PLANNERS, "scripted", lambda config: LLMPlanner(model, "scripted"))
        return model

    return register


def test_a_repeated_failing_proposal_is_rejected_then_forced(prefect_harness, scripted_planner) -> None:
    from internflow.tasks.plan import plan_next_iteration

    bad = IterationParams(learning_rate=1e-3, max_steps=40)
    failure = FailedIteration(index=1, params=bad, error="RuntimeError: loss is NaN")
    insist = {"learning_rate": 1e-3, "max_steps": 40, "rationale": "try again"}
    model = scripted_planner([answer(insist)])
    proposal = plan_next_iteration(make_state(failures=[failure], planner="scripted"))
    assert proposal is not None and proposal.guard_action == "force"
    assert "repeat" in proposal.guard_reasons and "RuntimeError" in proposal.guard_reasons
    assert signature(proposal.params) != signature(bad)
    assert any("REJECTED" in p and "identical to iteration 1" in p for p in model.prompts)  # re-asked with reason


def test_a_rejected_proposal_is_replaced_when_the_planner_changes_its_mind(prefect_harness, scripted_planner) -> None:
    from internflow.tasks.plan import plan_next_iteration

    bad = IterationParams(learning_rate=1e-3, max_steps=40)
    failure = FailedIteration(index=1, params=bad, error="RuntimeError: loss is NaN")
    scripted_planner(
        [
            answer({"learning_rate": 1e-3, "max_steps": 40, "rationale": "again"}),
            answer({"learning_rate": 1e-5, "max_steps": 40, "rationale": "lower lr after the reject"}),
        ]
    )
    proposal = plan_next_iteration(make_state(failures=[failure], planner="scripted"))
    assert proposal is not None and proposal.guard_action == "reject"
    assert proposal.params.learning_rate == 1e-5 and proposal.rationale == "lower lr after the reject"


def test_plan_task_publishes_the_planner_log(prefect_harness, scripted_planner) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from internflow.tasks.plan import plan_next_iteration

    scripted_planner([answer({"max_steps": 77, "rationale": "PLAN-LOG-MARKER"})])
    plan_next_iteration(make_state(ONE_RUN, planner="scripted"))

    async def latest() -> str:
        async with get_client() as client:
            only_log = ArtifactFilter(key=ArtifactFilterKey(any_=["planner-log"]))
            found = await client.read_artifacts(artifact_filter=only_log, sort=ArtifactSort.CREATED_DESC, limit=1)
        return str(found[0].data)

    log = asyncio.run(latest())
    assert "PLAN-LOG-MARKER" in log and "| 1 |" in log and "45.0%" in log


# ---------------------------------------------------------------- end to end ---------------


async def _latest_artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async with get_client() as client:
        only = ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        found = await client.read_artifacts(artifact_filter=only, sort=ArtifactSort.CREATED_DESC, limit=1)
    return str(found[0].data)


def _bundled_campaign(planner: str, tiny_model: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch):
    import asyncio

    from internflow.flows.campaign import campaign

    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    config = CampaignConfig(
        model=str(tiny_model), workspace=str(workspace), max_iterations=2, eval_limit=8,
        recipe="sft/smoke", time_budget_minutes=30, planner=planner, eval_backend="transformers",
    )  # fmt: skip
    report = campaign(config)
    return report, asyncio.run(_latest_artifact("planner-log")), asyncio.run(_latest_artifact("proposal"))


def test_campaign_with_the_bundled_planner_reads_prefect_history(
    prefect_harness, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report, log, proposal = _bundled_campaign(f"bundled:{tiny_model}", tiny_model, tmp_path, monkeypatch)
    assert len(report.iterations) == 2 and not report.failures
    assert "History read from: Prefect run history" in proposal and "by bundled:" in proposal
    assert "| 1 |" in log and "| 2 |" in log and "(running)" not in log  # closed with both outcomes
    assert "chosen by bundled" in report.iterations[1].rationale


@pytest.mark.slow
def test_default_bundled_smollm2_planner_runs_a_campaign_offline(
    prefect_harness, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded SmolLM2 as the planner (the CLI default), offline, on a tiny base model."""
    report, log, _ = _bundled_campaign("bundled", tiny_model, tmp_path, monkeypatch)
    assert len(report.iterations) == 2
    assert "chosen by bundled from" in report.iterations[1].rationale
    assert "| 2 |" in log


# ---------------------------------------------------------------- OpenAI-compatible endpoint


def test_openai_compatible_endpoint_over_http_gives_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.replay_server import Recording, ReplayServer

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("INTERNFLOW_PLANNER_API_KEY", "sk-local-test")
    recorded = Recording.from_file("openai/chat-completion-final-answer.json")
    with ReplayServer({"/v1/chat/completions": recorded}) as server:
        server.inject("/v1/chat/completions", [503])  # the openai client's own retry gets past it
        planner = get_planner(CampaignConfig(planner=f"openai:{server.url}/v1:qwen2.5-0.5b-instruct"))
        proposal = planner.propose(make_state(ONE_RUN))
        sent = server.requests_to("/v1/chat/completions")
    assert proposal is not None and proposal.source.startswith("openai:")
    assert proposal.params.datasets == ("arithmetic-direct", "arithmetic-worked")
    assert (proposal.params.learning_rate, proposal.params.max_steps) == (2e-4, 60)
    assert len(sent) == 2 and sent[-1].headers["authorization"] == "Bearer sk-local-test"
    request = json.loads(sent[-1].body)
    assert request["model"] == "qwen2.5-0.5b-instruct"
    assert {t["function"]["name"] for t in request["tools"]} >= {"final_answer", "campaign_digest", "iteration_details"}
    assert "DIGEST-MARKER" in json.dumps(request["messages"])


def test_a_stall_forces_a_change_of_direction_and_the_next_proposal_passes(prefect_harness, scripted_planner) -> None:
    from internflow.tasks.plan import plan_next_iteration

    stalled = [
        _result(1, IterationParams(max_steps=40), 0.45),
        _result(2, IterationParams(max_steps=60), 0.455),
        _result(3, IterationParams(max_steps=90), 0.45),
        _result(4, IterationParams(max_steps=100), 0.452),
    ]  # 1 improved on the baseline, 2-4 did not improve on 1
    scripted_planner([answer({"max_steps": 120, "rationale": "just a bit longer again"})])
    proposal = plan_next_iteration(make_state(stalled, planner="scripted"))
    assert proposal is not None and proposal.guard_action == "force" and "stall" in proposal.guard_reasons
    assert proposal.params.learning_rate != 1e-4 or proposal.params.datasets != ("arithmetic-direct",)
    # once the forced iteration has run (tagged 'force'), the planner's next idea in its direction passes
    forced = _result(5, proposal.params, 0.46)
    follow_up = proposal.params.model_copy(update={"max_steps": proposal.params.max_steps + 30})
    scripted_planner([answer({**follow_up.model_dump(mode="json", exclude={"seed"}), "rationale": "follow up"})])
    from internflow.agent.digest import records_from_results

    records = [r.model_copy(update={"guard_action": "force"}) if r.index == 5 else r
               for r in records_from_results([*stalled, forced], [])]  # fmt: skip
    from internflow.agent.guard import DoomLoopGuard

    assert DoomLoopGuard().review(follow_up, records, baseline=0.3).ok


# ---------------------------------------------------------------- the one search space ------


def test_a_planner_may_set_every_iteration_parameter_but_the_seed_and_nothing_else() -> None:
    from internflow.agent.search_space import PLANNED

    assert set(PLANNED) == set(IterationParams.model_fields) - {"seed", "min_per_device_train_batch_size"}
    described = SearchSpace(datasets=DATASETS).describe()
    assert all(f"- {name}:" in described for name in PLANNED), "the prompt shows every field a planner may set"
    with pytest.raises(ValueError, match="seed: not a parameter a planner may set"):
        parse_output({"seed": 3, "rationale": "luck"})


def test_the_llm_can_ask_for_self_distillation_completion_only_loss_screens_and_mix_weights() -> None:
    space = SearchSpace(datasets=DATASETS)
    answer = {
        "init_from": "best", "self_distill_k": 4, "self_distill_temperature": 0.7, "completion_only_loss": False,
        "train_fraction": 0.25, "eval_fraction": 0.5, "datasets": list(DATASETS), "dataset_weights": [2, 1],
        "lr_scheduler_type": "linear", "rationale": "distill a screen",
    }  # fmt: skip
    params = space.apply(IterationParams(), parse_output(answer))
    assert (params.self_distill_k, params.self_distill_temperature, params.completion_only_loss) == (4, 0.7, False)
    assert (params.train_fraction, params.eval_fraction, params.dataset_weights) == (0.25, 0.5, (2.0, 1.0))
    with pytest.raises(ValueError, match="self_distill_k: 40 is outside 0..16"):
        space.apply(IterationParams(), parse_output({"self_distill_k": 40, "rationale": "many"}))


def test_grpo_rewards_named_by_an_llm_must_be_registered_not_code_paths() -> None:
    space = SearchSpace(datasets=("arithmetic-prompts",))
    grpo = {"method": "grpo", "datasets": ["arithmetic-prompts"], "rationale": "judge as reward"}
    params = space.apply(IterationParams(), parse_output(grpo | {"reward_funcs": ["exact_answer", "format"]}))
    assert params.method == "grpo" and params.reward_funcs == ("exact_answer", "format")
    with pytest.raises(ValueError, match=r"reward_funcs: \['os:system'\] not among the registered"):
        space.apply(IterationParams(), parse_output(grpo | {"reward_funcs": ["os:system"]}))


def test_a_change_of_method_or_data_drops_settings_it_makes_meaningless() -> None:
    space = SearchSpace(datasets=(*DATASETS, "arithmetic-prompts"))
    anchor = IterationParams(datasets=DATASETS, dataset_weights=(2.0, 1.0), self_distill_k=4)
    grpo = space.apply(anchor, parse_output({"method": "grpo", "datasets": ["arithmetic-prompts"], "rationale": "r"}))
    assert grpo.self_distill_k == 0 and grpo.dataset_weights == ()


def test_the_prompt_shows_the_policys_moves_and_the_budget_left() -> None:
    model = ScriptedModel([answer({"max_steps": 60, "rationale": "r"})])
    timed = ONE_RUN[0].model_copy(update={"finished_s": 15 * 60})
    LLMPlanner(model, "scripted").propose(make_state((timed,)))
    assert "self-distill: train on the best model's own answers that the task's judge accepts" in model.prompts[0]
    assert "GRPO from the best model, rewarded by the task's own judge" in model.prompts[0]
    assert "Budget left: 2 of 3 iterations, about 45.0 of 60 minutes" in model.prompts[0]


def test_the_bundled_planner_chooses_among_the_search_policys_candidates_screens_included() -> None:
    class FirstIsBest:
        def score(self, context: str, options: list[str]) -> list[float]:
            return [-float(i) for i in range(len(options))]

    state = make_state((ONE_RUN[0].model_copy(update={"finished_s": 60.0}),)).model_copy(
        update={"config": CampaignConfig(time_budget_minutes=60, max_iterations=10)}
    )
    planner = BundledPlanner(FirstIsBest())  # type: ignore[arg-type]
    expected = [p.params for p in SearchPolicy().candidates(state)]
    assert [c.params for c in planner.candidates(state)] == expected and all(p.screened for p in expected)
    proposal = planner.propose(state)
    assert proposal is not None and proposal.params == expected[0] and proposal.params.screened


def test_plan_task_states_why_the_search_stopped(prefect_harness) -> None:
    from internflow.schemas import NoProposal
    from internflow.tasks.plan import plan_next_iteration

    # 12-min budget, the last iteration ended 10 s before it: no move fits, not even shortened.
    spent = ONE_RUN[0].model_copy(update={"finished_s": 12 * 60 - 10})
    state = make_state((spent,)).model_copy(update={"config": CampaignConfig(time_budget_minutes=12)})

    answer = plan_next_iteration(state)

    assert isinstance(answer, NoProposal) and answer.source == "search"
    assert answer.reason.startswith("search exhausted: every move around the 1 iteration(s) that beat the baseline")
    assert "do not fit the 0.2 min left" in answer.reason


# ---------------------------------------------------------------- rounds: a batch per round ------


def test_the_llm_planner_is_asked_for_a_round_as_one_batch() -> None:
    first = {"learning_rate": 2e-4, "rationale": "faster", "evidence": ["#1"]}
    second = {"max_steps": 90, "rationale": "longer", "evidence": ["#1"]}
    model = ScriptedModel([answer({"proposals": [first, first, second]})])  # a repeat is dropped
    round_ = LLMPlanner(model, "scripted").propose_batch(make_state(ONE_RUN), 2)
    assert [(p.params.learning_rate, p.params.max_steps, p.source) for p in round_] == [
        (2e-4, 40, "scripted"),
        (1e-4, 90, "scripted"),
    ]
    assert len(model.prompts) == 1 and "This round runs 2 iterations at the same time" in model.prompts[0]


def test_slots_the_llm_planner_leaves_empty_go_to_the_search_policy() -> None:
    model = ScriptedModel([answer({"learning_rate": 2e-4, "rationale": "faster"})])  # one object for two slots
    round_ = LLMPlanner(model, "scripted").propose_batch(make_state(ONE_RUN), 2)
    assert [p.source for p in round_] == ["scripted", "search (fallback)"]
    assert signature(round_[0].params) != signature(round_[1].params)
    assert "scripted planner proposed 1 of 2" in round_[1].rationale


def test_a_round_is_planned_without_prefect_and_the_guards_interventions_come_back_as_data(scripted_planner) -> None:
    """internflow.agent.round_planner decides; the plan task only reads the history and publishes the artifacts."""
    from internflow.agent.digest import records_from_results
    from internflow.agent.round_planner import propose_round

    bad = IterationParams(learning_rate=1e-3, max_steps=40)
    failure = FailedIteration(index=1, params=bad, error="RuntimeError: loss is NaN")
    good = {"learning_rate": 2e-4, "max_steps": 60, "rationale": "gentler"}
    scripted_planner(
        [
            answer({"proposals": [good, {"learning_rate": 1e-3, "max_steps": 40, "rationale": "again"}]}),
            answer({"learning_rate": 5e-5, "max_steps": 40, "rationale": "much lower"}),
        ]
    )
    state = make_state(failures=[failure], planner="scripted")

    plan = propose_round(state, records_from_results(state.history, state.failures), 2)

    assert plan.first_index == 2 and plan.stop is None and plan.digest_tokens > 0
    assert [p.guard_action for p in plan.proposals] == ["accept", "reject"]
    assert [(i.index, i.action, i.proposal.params.learning_rate) for i in plan.interventions] == [(3, "reject", 1e-3)]


def test_each_proposal_of_a_round_is_reviewed_by_the_guard(prefect_harness, scripted_planner) -> None:
    """A batch that repeats a failed run: that slot is rejected and re-asked (with the round's other
    pick shown as taken), the other slot stands."""
    from internflow.tasks.plan import plan_round

    bad = IterationParams(learning_rate=1e-3, max_steps=40)
    failure = FailedIteration(index=1, params=bad, error="RuntimeError: loss is NaN")
    good = {"learning_rate": 2e-4, "max_steps": 60, "rationale": "gentler"}
    model = scripted_planner(
        [
            answer({"proposals": [good, {"learning_rate": 1e-3, "max_steps": 40, "rationale": "again"}]}),
            answer({"learning_rate": 5e-5, "max_steps": 40, "rationale": "much lower"}),
        ]
    )
    round_ = plan_round(make_state(failures=[failure], planner="scripted"), 2)
    assert isinstance(round_, tuple) and len(round_) == 2
    assert [p.guard_action for p in round_] == ["accept", "reject"]
    assert round_[1].params.learning_rate == 5e-5 and "identical to iteration 1" in round_[1].guard_reasons
    retry = model.prompts[-1]
    assert "REJECTED" in retry and "Already chosen for this round" in retry and "lr=2.0e-04" in retry
