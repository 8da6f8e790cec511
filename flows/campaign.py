"""The campaign: evaluate the untouched base model, then let the planner drive research
iterations, in rounds of `parallel_iterations` run at the same time, until the budget is spent.
Ends with the best model and a stated stop reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed

from internflow import events, narration
from internflow.agent.approval import request_round_approval
from internflow.agent.budget import estimate_job, round_estimate_s, stop_reason
from internflow.benchmarks import get_benchmark
from internflow.evaluation.integrity import pin_evaluator
from internflow.evaluation.run import eval_server
from internflow.flows.ledger import CampaignLedger
from internflow.flows.preflight import Preflight, preflight
from internflow.flows.resume import one_campaign_per_workspace, resume, unfinished_record
from internflow.flows.rounds import Outcome, run_round
from internflow.retention import DiskBudget
from internflow.schemas import (
    CampaignConfig,
    CampaignReport,
    EvalRequest,
    FailedIteration,
    IterationParams,
    IterationResult,
    LiteratureRequest,
    NoProposal,
    Proposal,
)
from internflow.secrets import secrets_from_blocks
from internflow.tasks.discover import discover_data
from internflow.tasks.evaluate import evaluate_model
from internflow.tasks.literature import survey_literature
from internflow.tasks.plan import close_planner_log, plan_round, withdraw_proposal
from internflow.tasks.publish import publish_campaign
from internflow.tasks.report import publish_failure, publish_report
from internflow.work_pools import iteration_deployment
from internflow.workspace import Workspace

__all__ = ["campaign"]


@flow(name="campaign", flow_run_name="campaign-{config.benchmark}")
def campaign(config: CampaignConfig = CampaignConfig()) -> CampaignReport:  # noqa: B008 (Prefect form default)
    """A research campaign: preflight, literature and data discovery, a baseline evaluation, then rounds
    of planned iterations until the time, money or iteration budget is spent; the best-on-dev model
    is scored once on test. Returns the CampaignReport (also `report.json` in the workspace);
    bad input is refused by preflight (ValueError) before anything is spent."""
    workspace = Workspace.open(config.workspace)
    # One campaign per workspace (a second is refused); the runs a killed one left "Running" become Crashed.
    with one_campaign_per_workspace(workspace.root):
        checked = preflight(config)  # refuse bad input (and a target with no usable data) before spending anything
        started, progress = time.monotonic(), _Progress()
        try:
            with secrets_from_blocks():  # HF and planner tokens from Prefect Secret blocks, the environment first
                return _run(config, workspace, checked, progress)
        except Exception as error:
            # Past preflight a failure still leaves report.json: the record so far and what ended it.
            so_far = progress.ledger.report("failed", str(flow_run.id)) if progress.ledger else None
            elapsed = time.monotonic() - started
            publish_failure(error, workspace.report_json, config, elapsed, so_far, str(flow_run.id))
            raise


def _score_on_test(ledger: CampaignLedger, evaluate: Any, baseline: EvalRequest) -> None:
    """The baseline and the best-on-dev model on the test split, once, after the last planning
    step: no test score can reach the planner, the digest or the guard.  A failure here leaves
    the campaign's iterations standing (the report says the test score is missing)."""
    best = ledger.best()
    if ledger.config.select_on == "test":  # already scored on test: the numbers stay, marked optimistic
        ledger.test_baseline, ledger.test_best = ledger.baseline, best.evaluation if best else None
        return
    on_test = baseline.model_copy(update={"label": "baseline-test", "split": "test"})
    base = evaluate(on_test, return_state=True)
    ledger.test_baseline = base.result() if base.is_completed() else None
    if best is not None:
        best_model = {"model_path": best.train.model_path, "model_fingerprint": best.train.trackio_run,
                      "adapter": best.train.adapter(), "label": "best-test"}  # fmt: skip
        scored = evaluate(on_test.model_copy(update=best_model), return_state=True)
        ledger.test_best = scored.result() if scored.is_completed() else None


@dataclass
class _Progress:
    ledger: CampaignLedger | None = None


def _run(config: CampaignConfig, workspace: Workspace, checked: Preflight, progress: _Progress) -> CampaignReport:
    log = get_run_logger()  # one line per decision: what a user reads first
    campaign_id = str(flow_run.id) if flow_run.id else None  # the resource of the campaign's events
    benchmark = get_benchmark(config.benchmark)
    storage = workspace.results_dir  # persisted results and cache records live in the workspace
    literature = survey_literature(
        LiteratureRequest(query=benchmark.literature_query, cache_dir=workspace.literature_dir)
    )
    data = discover_data(config, literature.hints, checked.data, checked.tokens)  # + the literature's datasets

    evaluator = pin_evaluator(workspace.root, benchmark)  # a changed evaluator or test set is refused
    # One vLLM server through the whole campaign (each iteration's model is put on it in place);
    # it goes down with the campaign, on failure and on cancel too.
    with eval_server(config.eval_backend, checked.base_model, config.eval_endpoint, workspace.logs_dir) as served:
        evaluate_here = evaluate_model.with_options(result_storage=storage)
        # Every evaluation of this campaign is this request with another model, label or split.
        # Iterations are chosen on the dev split; the test split is scored once, after the search.
        baseline_request = EvalRequest(
            model_path=checked.base_model, model_fingerprint=checked.base_fingerprint,
            benchmark=config.benchmark,  # the spec path for a task spec: what get_benchmark reads
            limit=config.eval_limit, seed=config.seed, label="baseline", samples_dir=workspace.samples_dir,
            backend=config.eval_backend, server=served, evaluator=evaluator, split=config.select_on,
        )  # fmt: skip
        baseline = evaluate_here(baseline_request)
        log.info(narration.baseline_line(baseline, config.model))
        ledger = CampaignLedger(
            config, str(workspace.root), checked.base_model, checked.base_fingerprint, baseline, served, evaluator,
            data, dev_source=benchmark.dev_source if config.select_on == "dev" else "the test split (optimistic)",
        )  # fmt: skip
        progress.ledger = ledger
        resume(ledger, unfinished_record(workspace.report_json, config))  # a killed campaign goes on from its record
        publish_report(ledger.report("running", str(flow_run.id)), workspace.report_json)
        disk = DiskBudget(workspace, checked.base_model, config.keep_last_models)

        def out_of_budget(round_: list[IterationParams] | None = None) -> str | None:
            """Why not run this round (a round counts as the sum of its iterations), or None."""
            estimate = round_estimate_s(round_, ledger.history) if round_ else None
            money_left = None if config.money_budget_usd is None else config.money_budget_usd - ledger.spent_usd
            return stop_reason(
                elapsed_s=ledger.elapsed_s,
                time_budget_s=config.time_budget_minutes * 60,
                iterations_done=ledger.done,
                max_iterations=config.max_iterations,
                next_estimate_s=estimate,
                next_job=None if estimate is None else estimate_job(estimate, "gpu", config.gpu_usd_per_hour),
                money_left_usd=money_left,
                round_size=len(round_ or ()) or 1,
            )

        pool = iteration_deployment(config.work_pool) if config.work_pool else None  # its iteration deployment
        while not (reason := out_of_budget()):
            size = min(config.parallel_iterations, config.max_iterations - ledger.done)
            planned = plan_round(ledger.planner_state(), size)
            if isinstance(planned, NoProposal):
                reason = f"planner: {planned.reason}"
                break
            first = ledger.done + 1
            for slot, proposal in enumerate(planned):
                log.info(narration.proposal_line(first + slot, proposal))
            round_, unfit = _fit_budget(list(planned), out_of_budget, first)
            if not round_ or (reason := disk.before_iteration(len(round_))):
                reason = reason or unfit
                for slot, proposal in enumerate(round_):
                    withdraw_proposal(first + slot, proposal, reason)
                break
            estimate = round_estimate_s([p.params for p in round_], ledger.history)
            approval = request_round_approval(tuple(round_), estimate, config)
            if approval.decision == "reject":
                reason = f"approval: {approval.describe()}"
                for slot, proposal in enumerate(round_):
                    withdraw_proposal(first + slot, proposal, reason)
                break
            if len(round_) == 1:  # a round of one may come back with edited parameters
                round_ = [round_[0].model_copy(update={"params": approval.params})]
            contexts = [ledger.context_for(first + slot, campaign_id) for slot in range(len(round_))]
            outcomes = run_round(list(zip(round_, contexts, strict=True)), storage, lambda: ledger.elapsed_s, pool)
            _record_round(ledger, outcomes, workspace, campaign_id)
            if reason := disk.after_iteration(ledger, len(round_)):  # retention; a full disk stops the campaign
                break
        log.info("stop: %s", reason)

        _score_on_test(ledger, evaluate_here, baseline_request)
        log.info(narration.scored_on_test_line(ledger.report(reason)))

    close_planner_log(ledger.planner_state())
    final = ledger.report(reason, str(flow_run.id))
    publish_report(final, workspace.report_json)
    publish_campaign(final, workspace.root)
    stopped = {"reason": reason, "iterations": ledger.done, "best_iteration": final.best_iteration}
    _announce(events.CAMPAIGN_STOPPED, config, workspace, campaign_id, stopped)
    # The final state's message is the result, shown on the run page; callers still get the report.
    return Completed(message=narration.result_line(final), data=final)  # type: ignore[return-value]


def _fit_budget(
    planned: list[Proposal], out_of_budget: Callable[[list[IterationParams]], str | None], first: int
) -> tuple[list[Proposal], str]:
    """The round cut (from its end) to what the budget can pay for, and the whole round's stop
    reason ("" when it all fits).  Each proposal cut says so in its artifact."""
    whole = out_of_budget([p.params for p in planned])
    if whole is None:
        return planned, ""
    fits = list(planned)
    while fits and out_of_budget([p.params for p in fits]):
        fits.pop()
    for slot in range(len(fits), len(planned)):
        withdraw_proposal(first + slot, planned[slot], whole, ended=not fits)
    return fits, whole


def _record_round(
    ledger: CampaignLedger, outcomes: list[Outcome], workspace: Workspace, campaign_id: str | None
) -> None:
    """Every outcome of the round into the record (a failed or crashed run as failed), one log line
    and one event each, then report.json; a new best is announced once it is recorded there."""
    log, config, best_before = get_run_logger(), ledger.config, ledger.best()
    for outcome in outcomes:
        ledger.record(outcome.proposal, outcome.state, outcome.index, outcome.finished_s)
        recorded = ledger.at(outcome.index)
        log.info(narration.outcome_line(recorded, ledger.best()))
        _announce(events.ITERATION_COMPLETED, config, workspace, campaign_id, _completed(recorded))
    publish_report(ledger.report("running", str(flow_run.id)), workspace.report_json)
    if (best := ledger.best()) is not None and (best_before is None or best.index != best_before.index):
        _announce(events.BEST_IMPROVED, config, workspace, campaign_id, _improved(best, ledger))


def _completed(recorded: IterationResult | FailedIteration) -> dict[str, Any]:
    if isinstance(recorded, FailedIteration):
        return {"index": recorded.index, "state": "failed", "error": recorded.error[:300]}
    return {
        "index": recorded.index,
        "state": "blocked" if recorded.blocked else "completed",
        "accuracy": recorded.evaluation.accuracy,
        "n": recorded.evaluation.n,
        "verdict": recorded.diagnosis.verdict,
        "flow_run_id": recorded.flow_run_id,
    }


def _improved(best: IterationResult, ledger: CampaignLedger) -> dict[str, Any]:
    return {
        "index": best.index,
        "accuracy": best.evaluation.accuracy,
        "gain_points": round(100 * (best.evaluation.accuracy - ledger.baseline.accuracy), 2),
        "model_path": best.train.model_path,
        "flow_run_id": best.flow_run_id,
    }


def _announce(event: str, config: CampaignConfig, workspace: Workspace, campaign_id: str | None, payload: dict) -> None:
    run = payload.get("flow_run_id")
    events.emit(event, campaign_id, str(workspace.root), config.benchmark, payload, run)
