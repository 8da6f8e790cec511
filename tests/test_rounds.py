"""A campaign's rounds: cut to the budget, approved once on their sum, their failures and crashes
recorded as failed; the work pool and tokens they need, refused or found before anything runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from internflow.schemas import CampaignConfig, EvalResult, IterationParams, Proposal

BASE = IterationParams(max_steps=40)


def _baseline() -> EvalResult:
    return EvalResult(
        label="baseline", benchmark="arithmetic", accuracy=0.3, n=100, n_correct=30,
        ci_low=0.2, ci_high=0.4, unparseable=0, samples_path="s.jsonl", runtime_s=1.0,
    )  # fmt: skip


def _round(*steps: int) -> list[Proposal]:
    return [Proposal(params=BASE.model_copy(update={"max_steps": s}), rationale=f"{s} steps") for s in steps]


def test_a_round_that_does_not_fit_the_budget_is_cut_from_its_end(prefect_harness) -> None:
    from prefect import flow

    from internflow.agent.budget import round_estimate_s, stop_reason
    from internflow.flows.campaign import _fit_budget
    from tests.test_budget import _result

    history = [_result(BASE, wall_s=60.0)]  # 40 steps: 60 s

    def out_of_budget(params: list[IterationParams]) -> str | None:
        estimate = round_estimate_s(params, history)
        return stop_reason(elapsed_s=0, time_budget_s=200, iterations_done=1, max_iterations=9,
                           next_estimate_s=estimate, round_size=len(params))  # fmt: skip

    @flow
    def plan() -> tuple[list[list[Proposal]], list[str]]:
        fits, cut = [], []
        for round_ in (_round(40, 40), _round(40, 80, 40), _round(200, 40)):
            kept, reason = _fit_budget(round_, out_of_budget, first=2)
            fits.append(kept)
            cut.append(reason)
        return fits, cut

    fits, reasons = plan()
    assert [len(kept) for kept in fits] == [2, 2, 0]  # 120 s fits; 60+120 fits, +60 more does not; 300+60 never
    assert reasons[0] == "" and reasons[1].startswith("time budget: the next round of 3 iterations needs ~4.0 min")
    assert reasons[2] == (
        "time budget: the next round of 2 iterations needs ~6.0 min (the sum of its iterations), 3.3 min left of 3.3"
    )


def test_a_round_is_approved_once_on_the_sum_of_its_iterations(prefect_harness) -> None:
    """Each iteration alone is under the threshold (0.5 of 0.75 GPU-hours), the round is not: one
    pause for the round, and its unanswered default (reject) applies to all of it."""
    from prefect import flow

    from internflow.agent.approval import request_round_approval

    config = CampaignConfig(approval_gpu_hours=0.75, approval_timeout_s=2, approval_default="reject")

    @flow
    def approve():  # type: ignore[no-untyped-def]
        return request_round_approval(tuple(_round(40, 60)), 2 * 1800.0, config)

    decision = approve()
    assert (decision.decision, decision.by) == ("reject", "timeout default")
    assert decision.reason.startswith("a round of 2 iterations, counted as their sum: ~60 min on gpu")


def test_a_crashed_iteration_run_is_recorded_as_failed_with_its_message() -> None:
    from prefect.states import Crashed

    from internflow.flows.ledger import CampaignLedger

    ledger = CampaignLedger(CampaignConfig(), "ws", "base", "fp", _baseline())
    crashed = Crashed(message="the worker's process was killed (SIGKILL)")
    ledger.record(_round(40)[0], crashed, index=3, finished_s=12.0)
    (failed,) = ledger.failures
    assert (failed.index, failed.finished_s) == (3, 12.0)
    assert failed.error == "CrashedRun: the worker's process was killed (SIGKILL)"
    assert ledger.at(3) is failed and ledger.report("stop").failures == (failed,)


def test_a_work_pool_without_an_iteration_deployment_is_refused_naming_the_fix(prefect_harness) -> None:
    from internflow.work_pools import WorkPoolError, iteration_deployment

    with pytest.raises(WorkPoolError, match=r"work_pool: no research-iteration deployment on work pool 'gpus'") as no:
        iteration_deployment("gpus")
    assert "prefect deploy --name iteration" in str(no.value) and isinstance(no.value, ValueError)


def test_an_hf_token_in_a_secret_block_is_sent_to_the_hub_and_gone_afterwards(
    prefect_harness, local_hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client

    from internflow.http import get, hf_token, session_for
    from internflow.secrets import SECRET_BLOCKS, secrets_from_blocks

    token = "hf_FAKEblockToken0123456789"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("INTERNFLOW_OFFLINE", raising=False)
    Secret(value=token).save(SECRET_BLOCKS["HF_TOKEN"], overwrite=True)
    try:
        with secrets_from_blocks() as filled:
            assert filled == ("HF_TOKEN",) and hf_token() == token
            get(session_for("hf-hub"), "api/datasets", {"search": "x"})  # discovery's Hub search
        assert "HF_TOKEN" not in os.environ, "the block's value leaves with the run"
        monkeypatch.setenv("HF_TOKEN", "hf_fromTheEnvironment")
        with secrets_from_blocks() as filled:
            assert filled == () and hf_token() == "hf_fromTheEnvironment", "the environment wins"
    finally:
        with get_client(sync_client=True) as client:
            client.delete_block_document(client.read_block_document_by_name(SECRET_BLOCKS["HF_TOKEN"], "secret").id)
    (search,) = local_hub.requests_of("search")
    assert search.headers["authorization"] == f"Bearer {token}"


def test_iterations_evaluated_at_once_take_turns_on_a_server_that_reloads_weights(tmp_path: Path) -> None:
    import threading
    import time

    from internflow.evaluation.server import exclusive_use
    from internflow.schemas import ServedModel

    server = ServedModel(base_url="http://127.0.0.1:8123/v1", model="m", model_path="base")
    inside: list[int] = []
    most = [0]

    def evaluate() -> None:
        with exclusive_use(server, tmp_path):
            inside.append(1)
            most[0] = max(most[0], len(inside))
            time.sleep(0.2)
            inside.pop()

    threads = [threading.Thread(target=evaluate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1
    users = server.model_copy(update={"reload_weights": False})
    with exclusive_use(users, tmp_path), exclusive_use(users, tmp_path):
        pass  # a user's server (never reloaded) needs no turns
