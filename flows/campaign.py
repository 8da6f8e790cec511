"""The campaign: evaluate the untouched base model, then let the planner drive research
iterations until the budget is spent.  Ends with the best model and a stated stop reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.runtime import flow_run
from prefect.states import Completed

from agent.approval import request_approval
from agent.budget import estimate_iteration_seconds, estimate_job, stop_reason
from agent.digest import GUARD_TAG_PREFIX
from flows.iteration import research_iteration
from internflow import narration
from internflow.benchmarks import get_benchmark
from internflow.evaluation.integrity import pin_evaluator
from internflow.ledger import CampaignLedger
from internflow.preflight import Preflight, preflight
from internflow.resume import one_campaign_per_workspace, resume, unfinished_record
from internflow.retention import DiskBudget
from internflow.schemas import CampaignConfig, CampaignReport, IterationParams, LiteratureRequest, NoProposal
from internflow.workspace import Workspace
from tasks.discover import discover_data
from tasks.evaluate import eval_server, evaluate_model
from tasks.literature import survey_literature
from tasks.plan import close_planner_log, plan_next_iteration, withdraw_proposal
from tasks.publish import publish_campaign
from tasks.report import publish_failure, publish_report

__all__ = ["campaign"]


@flow(name="campaign", flow_run_name="campaign-{config.benchmark}")
def campaign(config: CampaignConfig = CampaignConfig()) -> CampaignReport:  # noqa: B008 (Prefect form default)
    workspace = Workspace.open(config.workspace)
    # One campaign per workspace (a second is refused); the runs a killed one left "Running" become Crashed.
    with one_campaign_per_workspace(workspace.root):
        checked = preflight(config)  # refuse bad input (and a target with no usable data) before spending anything
        started, progress = time.monotonic(), _Progress()
        try:
            return _run(config, workspace, checked, progress)
        except Exception as error:
            # Past preflight a failure still leaves report.json: the record so far and what ended it.
            so_far = progress.ledger.report("failed", str(flow_run.id)) if progress.ledger else None
            elapsed = time.monotonic() - started
            publish_failure(error, workspace.report_json, config, elapsed, so_far, str(flow_run.id))
            raise


def _score_on_test(ledger: CampaignLedger, evaluate: Any, shared: dict[str, Any]) -> None:
    """The baseline and the best-on-dev model on the test split, once, after the last planning
    step: no test score can reach the planner, the digest or the guard.  A failure here leaves
    the campaign's iterations standing (the report says the test score is missing)."""
    best = ledger.best()
    if ledger.config.select_on == "test":  # already scored on test: the numbers stay, marked optimistic
        ledger.test_baseline, ledger.test_best = ledger.baseline, best.evaluation if best else None
        return
    limit = ledger.config.eval_limit
    base = evaluate(ledger.base_model, ledger.base_fingerprint, limit=limit, label="baseline-test", split="test",
                    return_state=True, **shared)  # fmt: skip
    ledger.test_baseline = base.result() if base.is_completed() else None
    if best is not None:
        scored = evaluate(best.train.model_path, best.train.trackio_run, limit=limit, label="best-test", split="test",
                          adapter=best.train.adapter(), return_state=True, **shared)  # fmt: skip
        ledger.test_best = scored.result() if scored.is_completed() else None


@dataclass
class _Progress:
    ledger: CampaignLedger | None = None


def _run(config: CampaignConfig, workspace: Workspace, checked: Preflight, progress: _Progress) -> CampaignReport:
    log = get_run_logger()  # one line per decision: what a user reads first
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
        on_this_campaign: dict[str, Any] = {  # what every evaluation of this campaign shares
            "benchmark_name": config.benchmark,  # the spec path for a task spec: what get_benchmark reads
            "seed": config.seed,
            "samples_dir": workspace.samples_dir,
            "backend": config.eval_backend,
            "server": served,
            "evaluator": evaluator,
        }
        # Iterations are chosen on the dev split; the test split is scored once, after the search.
        baseline = evaluate_here(
            checked.base_model, checked.base_fingerprint, limit=config.eval_limit, label="baseline",
            split=config.select_on, **on_this_campaign,
        )  # fmt: skip
        log.info(narration.baseline_line(baseline, config.model))
        ledger = CampaignLedger(
            config, str(workspace.root), checked.base_model, checked.base_fingerprint, baseline, served, evaluator,
            data, dev_source=benchmark.dev_source if config.select_on == "dev" else "the test split (optimistic)",
        )  # fmt: skip
        progress.ledger = ledger
        resume(ledger, unfinished_record(workspace.report_json, config))  # a killed campaign goes on from its record
        publish_report(ledger.report("running", str(flow_run.id)), workspace.report_json)
        disk = DiskBudget(workspace, checked.base_model, config.keep_last_models)

        def out_of_budget(next_params: IterationParams | None = None) -> str | None:
            estimate = estimate_iteration_seconds(next_params, ledger.history) if next_params else None
            money_left = None if config.money_budget_usd is None else config.money_budget_usd - ledger.spent_usd
            return stop_reason(
                elapsed_s=ledger.elapsed_s,
                time_budget_s=config.time_budget_minutes * 60,
                iterations_done=ledger.done,
                max_iterations=config.max_iterations,
                next_estimate_s=estimate,
                next_job=None if estimate is None else estimate_job(estimate, "gpu", config.gpu_usd_per_hour),
                money_left_usd=money_left,
            )

        while not (reason := out_of_budget()):
            proposal = plan_next_iteration(ledger.planner_state())
            if isinstance(proposal, NoProposal):
                reason = f"planner: {proposal.reason}"
                break
            log.info(narration.proposal_line(ledger.done + 1, proposal))
            if reason := out_of_budget(proposal.params) or disk.before_iteration():
                withdraw_proposal(ledger.done + 1, proposal, reason)
                break
            approval = request_approval(proposal, estimate_iteration_seconds(proposal.params, ledger.history), config)
            if approval.decision == "reject":
                reason = f"approval: {approval.describe()}"
                withdraw_proposal(ledger.done + 1, proposal, reason)
                break
            proposal = proposal.model_copy(update={"params": approval.params})
            with tags(GUARD_TAG_PREFIX + proposal.guard_action):  # the guard's action, kept in Prefect's history
                outcome = research_iteration.with_options(result_storage=storage)(
                    proposal.params, ledger.next_context(), proposal.rationale, return_state=True
                )
            ledger.record(proposal, outcome)
            log.info(narration.outcome_line(ledger.latest(), ledger.best()))
            publish_report(ledger.report("running", str(flow_run.id)), workspace.report_json)
            if reason := disk.after_iteration(ledger):  # retention; a full disk stops the campaign
                break
        log.info("stop: %s", reason)

        _score_on_test(ledger, evaluate_here, on_this_campaign)
        log.info(narration.scored_on_test_line(ledger.report(reason)))

    close_planner_log(ledger.planner_state())
    final = ledger.report(reason, str(flow_run.id))
    publish_report(final, workspace.report_json)
    publish_campaign(final, workspace.root)
    # The final state's message is the result, shown on the run page; callers still get the report.
    return Completed(message=narration.result_line(final), data=final)  # type: ignore[return-value]
