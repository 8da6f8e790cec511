"""What a campaign publishes for people — learning curves, the campaign report, the model card —
and that no secret in the environment reaches any artifact, log, report, card or trackio record."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from internflow.schemas import CampaignConfig, CampaignReport

FAKE_HF_TOKEN = "hf_FAKEtokenThatMustNeverLeak0123456789"
FAKE_OPENAI_KEY = "sk-FAKEkeyThatMustNeverLeak0123456789"
FAKE_BLOCK_KEY = "sk-FAKEblockKeyThatMustNeverLeak0123456789"  # from a Prefect Secret block, not the environment
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def campaign_with_secrets(prefect_harness, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    from prefect.blocks.system import Secret

    from internflow.flows.campaign import campaign
    from internflow.secrets import SECRET_BLOCKS

    workspace = tmp_path_factory.mktemp("publish")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INTERNFLOW_OFFLINE", "1")
        patch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
        patch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
        patch.delenv("INTERNFLOW_PLANNER_API_KEY", raising=False)
        Secret(value=FAKE_BLOCK_KEY).save(SECRET_BLOCKS["INTERNFLOW_PLANNER_API_KEY"], overwrite=True)
        config = CampaignConfig(
            model=str(tiny_model),
            workspace=str(workspace),
            max_iterations=2,
            eval_limit=12,
            recipe="sft/smoke",
            eval_backend="transformers",
            time_budget_minutes=30,
        )
        try:
            state = campaign(config, return_state=True)
        finally:
            _delete_secret_block(SECRET_BLOCKS["INTERNFLOW_PLANNER_API_KEY"])
    return state, workspace


def _delete_secret_block(name: str) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.delete_block_document(client.read_block_document_by_name(name, "secret").id)


def _campaign_events(campaign_run_id: str, at_least: int = 1) -> list:
    """The events whose resource is this campaign, once the server has stored `at_least` of them."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()  # sent by now, not still queued in this process
    wanted = EventFilter(resource=EventResourceFilter(id=[f"internflow.campaign.{campaign_run_id}"]))
    deadline = time.monotonic() + 60  # the server stores events in batches
    with get_client(sync_client=True) as client:
        while len(found := client.read_events(wanted, limit=50).events) < at_least and time.monotonic() < deadline:
            time.sleep(1)
    return found


def _report(campaign_with_secrets) -> CampaignReport:
    state, _ = campaign_with_secrets
    assert state.is_completed(), state
    return state.result()


async def _artifacts_and_logs(flow_run_ids: list[str]) -> tuple[list, list]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids))
        )
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)))
        return artifacts, logs


def _run_ids(report: CampaignReport) -> list[str]:
    return [report.flow_run_id or ""] + [r.flow_run_id or "" for r in report.iterations]


def test_each_iteration_gets_a_learning_curve_png_and_image_artifact(campaign_with_secrets) -> None:
    report = _report(campaign_with_secrets)
    _, workspace = campaign_with_secrets
    artifacts, _ = asyncio.run(_artifacts_and_logs(_run_ids(report)))
    images = {str(a.flow_run_id): a for a in artifacts if a.key == "learning-curve"}
    for result in report.iterations:
        png = workspace / "reports" / f"iteration-{result.index}-learning-curve.png"
        assert png.read_bytes().startswith(PNG_MAGIC)
        artifact = images[result.flow_run_id or ""]
        # Markdown with the image embedded: an image artifact also prints its whole base64 text as a link.
        assert artifact.type == "markdown" and "](data:image/png;base64,iVBOR" in str(artifact.data)


def test_campaign_progress_plot_is_published_after_every_iteration(campaign_with_secrets) -> None:
    report = _report(campaign_with_secrets)
    _, workspace = campaign_with_secrets
    artifacts, _ = asyncio.run(_artifacts_and_logs([report.flow_run_id or ""]))
    progress = [a for a in artifacts if a.key == "campaign-progress"]
    # report.json (and so the plot) is written once the baseline is scored, so a kill in iteration 1 leaves a record.
    assert len(progress) == len(report.iterations) + 2, "one after the baseline, one per iteration, and the final one"
    assert all("](data:image/png;base64,iVBOR" in str(a.data) for a in progress)
    assert (workspace / "reports" / "campaign-progress.png").read_bytes().startswith(PNG_MAGIC)
    assert all(r.finished_s is not None and r.finished_s > 0 for r in report.iterations)
    everywhere, _ = asyncio.run(_artifacts_and_logs(_run_ids(report)))
    links = [a for a in everywhere if a.key == "trackio"]  # one per training run, in its iteration
    for result in report.iterations:  # a link artifact's data is the markdown link
        url = f"http://127.0.0.1:7860/?project=internflow&runs={result.train.trackio_run}"
        assert any(f"]({url})" in str(a.data) for a in links), [a.data for a in links]


def test_campaign_log_has_one_line_per_decision_and_its_final_state_states_the_result(
    campaign_with_secrets,
) -> None:
    """Regression: the logs only said "Finished in state Completed()" and the final message was empty."""
    from prefect.logging.handlers import APILogHandler

    from internflow.narration import iteration_line, result_line

    state, workspace = campaign_with_secrets
    report = _report(campaign_with_secrets)
    assert state.message == result_line(report) and f"stopped: {report.stop_reason}" in state.message
    APILogHandler().flush()
    _, logs = asyncio.run(_artifacts_and_logs([report.flow_run_id or ""]))
    flow_lines = [log.message for log in logs if log.task_run_id is None]
    expected = [
        "baseline: ",
        "iteration 1 proposed by ",
        "iteration 1: ",
        "iteration 2 proposed by ",
        "iteration 2: ",
        "stop: iteration budget spent (2 of 2)",
        "test split: ",
    ]
    decisions = [line for line in flow_lines if line.startswith(tuple(expected))]
    assert [next(e for e in expected if line.startswith(e)) for line in decisions] == expected, flow_lines
    assert all("Why: " in line and "guard accepted it" in line for line in decisions if "proposed by" in line)
    assert all("pt vs baseline" in line for line in decisions if line.startswith(("iteration 1:", "iteration 2:")))
    _, iteration_logs = asyncio.run(_artifacts_and_logs([r.flow_run_id or "" for r in report.iterations]))
    for result in report.iterations:
        assert iteration_line(result, str(workspace)) in [log.message for log in iteration_logs]


def test_campaign_report_is_written_and_published(campaign_with_secrets) -> None:
    report = _report(campaign_with_secrets)
    _, workspace = campaign_with_secrets
    text = (workspace / "campaign-report.md").read_text()
    assert report.stop_reason in text and f"{100 * report.baseline.accuracy:.1f} %" in text
    for result in report.iterations:
        assert f"runs={result.train.trackio_run}" in text and result.evaluation.samples_path in text
    assert len(text.split()) < 600, "a two-minute read"
    artifacts, _ = asyncio.run(_artifacts_and_logs(_run_ids(report)))
    published = [a for a in artifacts if a.key == "campaign-report" and str(a.flow_run_id) == report.flow_run_id]
    assert published and published[0].data == text


def test_model_card_states_data_hashes_parameters_ci_and_lineage(campaign_with_secrets) -> None:
    from huggingface_hub import ModelCard

    from internflow.reporting import model_card_markdown

    report = _report(campaign_with_secrets)
    if report.best_iteration is None:  # a random tiny model rarely beats itself: card the last iteration
        last = report.iterations[-1]
        report = report.model_copy(update={"best_iteration": last.index, "best_model_path": last.train.model_path})
    best = next(r for r in report.iterations if r.index == report.best_iteration)
    card = ModelCard(model_card_markdown(report))
    assert card.data.library_name == "transformers" and "internflow" in card.data.tags
    text = card.text
    for source in best.data.sources:
        assert source.sha256 in text and source.name in text
    assert f"{100 * best.evaluation.ci_low:.1f} %" in text and f"{100 * best.evaluation.ci_high:.1f} %" in text
    assert f"| `learning_rate` | `{best.params.learning_rate}` |" in text
    assert f"iteration {best.index}: {best.params.method}" in text and report.base_model in text


def test_best_model_folder_has_its_card_exactly_when_an_iteration_won(campaign_with_secrets) -> None:
    report = _report(campaign_with_secrets)
    for result in report.iterations:
        card = Path(result.train.model_path) / "README.md"
        assert card.is_file() == (result.index == report.best_iteration)


def test_no_secret_reaches_any_artifact_log_report_card_or_trackio_record(campaign_with_secrets) -> None:
    report = _report(campaign_with_secrets)
    _, workspace = campaign_with_secrets
    artifacts, logs = asyncio.run(_artifacts_and_logs(_run_ids(report)))
    assert {a.key for a in artifacts} >= {"learning-curve", "campaign-report", "leaderboard", "train-loss"}
    assert len(logs) > 10, "the scan must see the run's logs"
    events = _campaign_events(report.flow_run_id or "")
    scanned = [str(a.data) + str(a.description) for a in artifacts] + [log.message for log in logs]
    scanned += [e.model_dump_json() for e in events]
    files = [p for p in workspace.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files), "trackio's database is part of the scan"
    assert events, "the campaign's events are part of the scan"
    # The block was read (its variable's name is logged), its value never written.
    assert any("tokens from Prefect Secret blocks: INTERNFLOW_PLANNER_API_KEY" in log.message for log in logs)
    for secret in (FAKE_HF_TOKEN, FAKE_OPENAI_KEY, FAKE_BLOCK_KEY):
        assert not [s for s in scanned if secret in s]
        assert not [p for p in files if secret.encode() in p.read_bytes()]


def test_the_campaign_emits_its_events_with_itself_as_the_resource(campaign_with_secrets) -> None:
    from internflow.events import CAMPAIGN_STOPPED, ITERATION_COMPLETED

    report = _report(campaign_with_secrets)
    _, workspace = campaign_with_secrets
    events = sorted(_campaign_events(report.flow_run_id or "", at_least=3), key=lambda e: e.occurred)
    assert [e.event for e in events] == [ITERATION_COMPLETED, ITERATION_COMPLETED, CAMPAIGN_STOPPED]
    assert {e.resource["internflow.workspace"] for e in events} == {str(workspace)}
    completed = [e.payload for e in events[:2]]
    assert [(p["index"], p["state"]) for p in completed] == [(1, "completed"), (2, "completed")]
    assert [p["accuracy"] for p in completed] == [r.evaluation.accuracy for r in report.iterations]
    assert events[2].payload["reason"] == report.stop_reason
    runs = {r.resource_in_role["iteration"].id for r in events[:2]}
    assert runs == {f"prefect.flow-run.{r.flow_run_id}" for r in report.iterations}


def test_push_to_hub_uploads_the_best_model_folder_with_its_card(campaign_with_secrets) -> None:
    import json

    from huggingface_hub import HfApi

    from internflow.tasks.publish import push_model
    from tests.replay_server import Recording, ReplayServer

    report = _report(campaign_with_secrets)
    last = report.iterations[-1]
    config = report.config.model_copy(update={"push_to_hub": True, "hub_repo_id": "internflow-test/arith-sft"})
    report = report.model_copy(
        update={"config": config, "best_iteration": last.index, "best_model_path": last.train.model_path}
    )
    folder = Path(last.train.model_path)
    from internflow.reporting import model_card_markdown

    (folder / "README.md").write_text(model_card_markdown(report))
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    modes = {"files": [{"path": f, "uploadMode": "regular", "shouldIgnore": False} for f in files]}
    api_repo = "/api/models/internflow-test/arith-sft"
    with ReplayServer() as hub:
        hub.add_route("/api/repos/create", Recording(b'{"url": "https://huggingface.co/internflow-test/arith-sft"}'))
        hub.add_route("/api/validate-yaml", Recording(b"{}"))  # the Hub checks the card's metadata first
        hub.add_route(f"{api_repo}/preupload", Recording(json.dumps(modes).encode()))
        hub.add_route(f"{api_repo}/commit", Recording.from_file("hf_jobs/commit.json"))
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
            url = push_model(report, HfApi(endpoint=hub.url, token=FAKE_HF_TOKEN))
    create, validate, _, commit = [r for r in hub.requests if r.method == "POST"]
    assert "library_name: transformers" in json.loads(validate.body)["content"]
    assert json.loads(create.body)["visibility"] == "private" and url.endswith("internflow-test/arith-sft")
    assert commit.path.endswith("/commit/main")
    for name in files:
        assert f'"path": "{name}"' in commit.body.decode() or f'"path":"{name}"' in commit.body.decode()
    assert commit.headers["authorization"] == f"Bearer {FAKE_HF_TOKEN}"
