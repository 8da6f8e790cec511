"""Publishing stage: the per-iteration learning curve; a new best model published inside its
iteration's transaction (the workspace's best pointer moved and, with push_to_hub, a Hub branch
pushed; both undone when the transaction rolls back); and at the campaign's end the markdown
report (workspace + artifact), the best model's card and, when asked, the push to the Hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.transactions import Transaction, get_transaction

from internflow.best import BestPointer, locked, read_pointer, write_pointer
from internflow.disk import is_disk_full
from internflow.markdown import code, image
from internflow.plots import plot_learning_curve
from internflow.reporting import campaign_report_markdown, model_card_markdown
from internflow.schemas import CampaignReport, Diagnosis, EvalResult, IterationContext, TrainResult

if TYPE_CHECKING:
    from huggingface_hub import HfApi

__all__ = ["CAMPAIGN_REPORT", "publish_campaign", "publish_learning_curve", "publish_model", "push_model"]

CAMPAIGN_REPORT = "campaign-report.md"


@task(name="learning-curve", cache_policy=NO_CACHE)
def publish_learning_curve(result: TrainResult, index: int, reports_dir: Path) -> Path:
    """PNG in the workspace; the artifact embeds it in markdown as a data URL, so the UI shows it with
    no file server (an image artifact would also print the whole base64 text as a link)."""
    path = plot_learning_curve(
        result, f"iteration {index}: {result.trackio_run}", reports_dir / f"iteration-{index}-learning-curve.png"
    )
    create_markdown_artifact(
        key="learning-curve",
        markdown=f"{image(path.read_bytes(), f'iteration {index} learning curve')}\n\nFile: {code(str(path))}",
        description=f"Iteration {index}: training loss per step ({result.steps} steps)",
    )
    return path


@task(name="publish", cache_policy=NO_CACHE)
def publish_campaign(report: CampaignReport, workspace_root: Path) -> Path:
    """The final report (markdown, ~2-minute read) and, with a best model, its card and optional push."""
    markdown = campaign_report_markdown(report)
    path = workspace_root / CAMPAIGN_REPORT
    _write(path, markdown)
    create_markdown_artifact(key="campaign-report", markdown=markdown, description="The campaign in two minutes")
    if report.best_iteration is None:
        get_run_logger().info("no iteration beat the baseline: no model card written")
        return path
    card = Path(report.best_model_path) / "README.md"
    _write(card, model_card := model_card_markdown(report))
    create_markdown_artifact(key="model-card", markdown=model_card, description=f"Model card of the best model: {card}")
    if report.config.push_to_hub:
        get_run_logger().info(f"pushed the best model to {push_model(report)}")
    return path


def _write(path: Path, text: str) -> None:
    """Write, or on a full disk say so (the artifact still carries the text) rather than fail the campaign."""
    try:
        path.write_text(text)
    except OSError as error:
        if not is_disk_full(error):
            raise
        get_run_logger().error("%s not written: the disk is full (%s); the artifact has it", path, error)


def push_model(report: CampaignReport, api: HfApi | None = None) -> str:
    """Upload the best model folder (with its card) to the Hub repo named in the config; returns its URL.
    The token comes from huggingface_hub's own lookup (HF_TOKEN or the login cache), never from us."""
    from huggingface_hub import HfApi

    repo_id = report.config.hub_repo_id
    if not repo_id:
        raise ValueError("hub_repo_id: push_to_hub is on but no Hub repository (e.g. 'user/model') is set")
    api = api or HfApi()
    url = api.create_repo(repo_id, private=True, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=report.best_model_path,
        commit_message=f"internflow: iteration {report.best_iteration} of campaign {report.flow_run_id}",
    )
    return str(url)


@task(name="publish-model", cache_policy=NO_CACHE)
def publish_model(
    trained: TrainResult,
    evaluation: EvalResult,
    diagnosis: Diagnosis,
    context: IterationContext,
    flow_run_id: str | None = None,
) -> BestPointer | None:
    """When this iteration beats the best published so far (healthy, scored on the whole eval
    subset, above the baseline): the workspace's best pointer moves to its model and, when the
    campaign pushes to the Hub, the model goes to a Hub branch named after its run.  Run inside
    the iteration's transaction: a rollback puts both back (`_unpublish`).  None when it is not
    the best.  (The campaign announces a new best, `internflow.best.improved`, once it has
    recorded the iteration.)"""
    log = get_run_logger()
    if evaluation.n < context.baseline.n or diagnosis.verdict == "failed":
        log.info("not published: a screen or a failed iteration is never the best")
        return None
    if evaluation.accuracy <= context.baseline.accuracy:
        log.info("not published: %.1f%% does not beat the baseline", 100 * evaluation.accuracy)
        return None
    root = Path(context.workspace)
    with locked(root):  # iterations of one round publish one at a time, and only upwards
        current = read_pointer(root)
        if current is not None and current.campaign_id != context.campaign_id:
            current = None  # another campaign's best, from an earlier run in this workspace
        if current is not None and current.accuracy >= evaluation.accuracy:
            log.info("not published: iteration %d's %.1f%% is the best already", current.index, 100 * current.accuracy)
            return None
        pointer = BestPointer(
            campaign_id=context.campaign_id,
            index=context.index,
            model_path=trained.model_path,
            run_name=trained.trackio_run,
            accuracy=evaluation.accuracy,
            n=evaluation.n,
            baseline_accuracy=context.baseline.accuracy,
            flow_run_id=flow_run_id,
            hub_repo_id=context.hub_repo_id,
        )
        if context.hub_repo_id:
            pointer = pointer.model_copy(update={"hub_revision": _push_revision(pointer)})
        write_pointer(root, pointer)
    transaction = get_transaction()
    if transaction is not None:  # what the rollback puts back
        transaction.set("published", pointer)
        transaction.set("previous", current)
        transaction.set("workspace", context.workspace)
    log.info("published iteration %d (%.1f%%) as the best%s", pointer.index, 100 * pointer.accuracy,
             f", Hub branch {pointer.hub_revision}" if pointer.hub_revision else "")  # fmt: skip
    return pointer


def _push_revision(pointer: BestPointer) -> str:
    """The model folder as a new commit on the Hub branch `pointer.run_name`; returns the branch."""
    from huggingface_hub import HfApi

    assert pointer.hub_repo_id is not None
    api = HfApi()
    api.create_repo(pointer.hub_repo_id, private=True, exist_ok=True)
    api.create_branch(pointer.hub_repo_id, branch=pointer.run_name, exist_ok=True)
    api.upload_folder(
        repo_id=pointer.hub_repo_id,
        folder_path=pointer.model_path,
        revision=pointer.run_name,
        commit_message=f"internflow: iteration {pointer.index} ({100 * pointer.accuracy:.1f}% on dev)",
    )
    return pointer.run_name


@publish_model.on_rollback
def _unpublish(transaction: Transaction) -> None:
    """Put the previous best pointer back (unless a later best has replaced ours meanwhile) and
    delete the Hub branch this iteration pushed."""
    pointer: BestPointer | None = transaction.get("published", None)
    if pointer is None:
        return
    root = Path(transaction.get("workspace"))
    with locked(root):
        if read_pointer(root) == pointer:
            write_pointer(root, transaction.get("previous", None))
    if pointer.hub_repo_id and pointer.hub_revision:
        from huggingface_hub import HfApi

        HfApi().delete_branch(pointer.hub_repo_id, branch=pointer.hub_revision)
    get_run_logger().warning("rolled back: iteration %d is no longer the published best", pointer.index)
