"""Publishing stage: the per-iteration learning curve, and at the campaign's end the markdown
report (workspace + artifact), the best model's card and, when asked, the push to the Hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from internflow.disk import is_disk_full
from internflow.markdown import code, image
from internflow.model_card import campaign_report_markdown, model_card_markdown, plot_learning_curve
from internflow.schemas import CampaignReport, TrainResult

if TYPE_CHECKING:
    from huggingface_hub import HfApi

__all__ = ["CAMPAIGN_REPORT", "publish_campaign", "publish_learning_curve", "push_model"]

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
