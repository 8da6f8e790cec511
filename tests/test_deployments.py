"""The README's deployment story, for real: `prefect server start` on 127.0.0.1, `prefect deploy`
from prefect.yaml, `prefect worker start` on the process pool, then the campaign deployment is
triggered through the API with parameters and completes with its artifacts; the overnight
deployment has its next run scheduled.  Then what a user sees: the run page, the artifacts and the
custom-run form rendered by the Prefect UI in headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.prefect_server import PrefectServer, prefect_cli

if TYPE_CHECKING:
    from prefect.client.schemas.objects import Artifact

ROOT = Path(__file__).resolve().parents[1]
POOL = "internflow-process"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with PrefectServer(tmp_path_factory.mktemp("prefect-home")) as server:
        yield server.env


@pytest.fixture(scope="module")
def deployed_with_worker(prefect_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    env = prefect_server
    prefect_cli(env, "work-pool", "create", POOL, "--type", "process")
    prefect_cli(env, "deploy", "--name", "campaign", "--name", "overnight", "--name", "iteration")
    log = (tmp_path_factory.mktemp("worker") / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--limit", "1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield env
    finally:
        worker.terminate()
        try:  # a worker still cleaning up a run may take longer than that on a loaded machine
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _with_api(env: dict[str, str]):
    """Point this process's client at the test server (above any session test harness's settings)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]})


@pytest.fixture(scope="module")
def triggered_campaign(deployed_with_worker, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """The campaign deployment run through the API with parameters, as the UI's Custom run does."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    workspace = tmp_path_factory.mktemp("deployed-campaign")
    with _with_api(deployed_with_worker):
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("campaign/campaign")
        config = {
            "model": str(tiny_model),
            "workspace": str(workspace),
            "max_iterations": 2,
            "eval_limit": 8,
            "recipe": "sft/smoke",
            "eval_backend": "transformers",
            "planner": "search",
        }
        run = run_deployment("campaign/campaign", parameters={"config": config}, timeout=420, poll_interval=3)
    return deployed_with_worker, deployment, run, workspace


def test_triggered_campaign_deployment_completes_with_artifacts(triggered_campaign) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    env, deployment, run, workspace = triggered_campaign
    form = deployment.parameter_openapi_schema
    assert "config" in form["properties"] and "CampaignConfig" in str(form), "the UI renders a typed form"
    assert run.state is not None and run.state.is_completed(), run.state
    with _with_api(env), get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert {"leaderboard", "campaign-report"} <= {a.key for a in artifacts}
    assert (workspace / "campaign-report.md").is_file() and (workspace / "report.json").is_file()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
    "--virtual-time-budget=20000",  # let the UI's API calls finish before the capture
]


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)"
)


def _browse(env: dict[str, str], path: str, profile: Path, expect: str, shot: Path | None = None) -> str:
    """The page's DOM once the UI has rendered `expect` into it (and a screenshot, when asked for)."""
    url = env["PREFECT_API_URL"].removesuffix("/api") + path
    browse = [shutil.which("chromium") or "chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    if shot is not None:
        subprocess.run([*browse, f"--screenshot={shot}", url], capture_output=True, timeout=180, check=True)
    dom = ""
    for _ in range(3):  # the single-page app sometimes isn't mounted yet when the DOM is dumped
        dom = subprocess.run([*browse, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
        if expect in _text(dom):
            break
    return dom


def _text(fragment: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _table(dom: str) -> tuple[list[str], list[list[str]]]:
    """The first rendered table's headers and body rows, as text."""
    body = dom[dom.index("<table") : dom.index("</table>")]
    headers = [_text(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", body, re.S)]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body[body.index("<tbody") :], re.S)
    return headers, [[_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]


@needs_chromium
def test_browser_shows_the_campaign_run_with_its_task_runs_and_artifacts(triggered_campaign, tmp_path) -> None:
    """The run page: header with its task-run count, the graph of task runs with artifact badges
    (leaderboard, campaign-report, …: drawn on a canvas, so checked on the screenshot), the logs."""
    env, _, run, _ = triggered_campaign
    shot = tmp_path / "campaign-run.png"
    dom = _browse(env, f"/runs/flow-run/{run.id}", tmp_path / "profile", run.name, shot)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000, "a blank page is tiny"
    assert run.name in dom and "Task runs" in dom and "evaluate-" in dom, "the run page did not render"


@pytest.fixture(scope="module")
def campaign_artifacts(triggered_campaign) -> dict[str, Artifact]:
    """The newest artifact of each key, from the campaign run and its iteration runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.sorting import ArtifactSort

    env, _, run, workspace = triggered_campaign
    report = json.loads((workspace / "report.json").read_text())
    runs = [run.id, *(it["flow_run_id"] for it in report["iterations"])]
    with _with_api(env), get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=runs)),
            sort=ArtifactSort.CREATED_DESC,
        )
    newest: dict[str, Artifact] = {}
    for artifact in found:
        newest.setdefault(artifact.key or "", artifact)
    return newest


@needs_chromium
def test_browser_renders_every_planner_log_column(triggered_campaign, campaign_artifacts, tmp_path) -> None:
    """Regression: the `|` in a proposal summary split the row, so why, guard and outcome never showed."""
    env, _, run, _ = triggered_campaign
    artifact = campaign_artifacts["planner-log"]
    shot = tmp_path / "planner-log.png"
    dom = _browse(env, f"/artifacts/artifact/{artifact.id}", tmp_path / "profile", "Planner log", shot)
    headers, rows = _table(dom)
    assert headers == ["#", "outcome", "guard", "proposal", "why"]
    assert [row[0] for row in rows] == ["1", "2"]
    for _, outcome, guard, proposal, why in rows:
        assert re.match(r"sft from base on \d+ rows of arithmetic-direct, lr \de-\d\d, \d+ steps", proposal), rows
        assert why and guard == "accept", rows
        assert re.fullmatch(r"\d+\.\d% \((improved|no_change|regressed|failed), [+-]\d+\.\d pt\)", outcome), rows
    # The flow run's panel beside every artifact shows the campaign's final state message: its result.
    assert run.state is not None and run.state.message and run.state.message[:40] in _text(dom)


@needs_chromium
def test_browser_shows_whole_questions_of_the_failures(triggered_campaign, campaign_artifacts, tmp_path) -> None:
    """Regression: prompts were cut at 60 characters (only the shared instruction showed), a column had
    no header, and nothing said the rows were the failures."""
    from internflow.evaluation.samples_markdown import shared_ends

    env, *_ = triggered_campaign
    artifact = campaign_artifacts["evaluation"]
    shot = tmp_path / "evaluation.png"
    dom = _browse(env, f"/artifacts/artifact/{artifact.id}", tmp_path / "profile", "Failures, worst first", shot)
    text = _text(dom)
    samples_path = re.search(r"every sample: (\S+\.jsonl)", text)
    assert samples_path, text[:2000]
    samples = [json.loads(line) for line in Path(samples_path.group(1)).read_text().splitlines()]
    failures = [s for s in samples if not s["correct"]]
    assert failures, "a random tiny model gets its answers wrong"
    headers, rows = _table(dom)
    assert headers == ["item", "question", "model output", "extracted answer", "expected answer"]
    head, tail = shared_ends([s["prompt"] for s in samples])
    assert f"Every prompt reads {' '.join((head + '…' + tail).split())}" in text
    shown = {row[0]: row[1] for row in rows}
    assert set(shown) == {s["id"] for s in failures[:20]}
    for sample in failures[:20]:
        question = sample["prompt"][len(head) : len(sample["prompt"]) - len(tail)]
        assert shown[sample["id"]] == " ".join(question.split()), "the whole question, not cut"


@needs_chromium
def test_browser_shows_the_leaderboard_as_the_cli_prints_it(triggered_campaign, campaign_artifacts, tmp_path) -> None:
    """Regression: accuracy showed as a fraction next to a gain in points, empty cells as bullets, the
    model path out of sight."""
    from internflow.reporting import CLI_COLUMNS, leaderboard_rows
    from internflow.schemas import CampaignReport

    env, _, _, workspace = triggered_campaign
    artifact = campaign_artifacts["leaderboard"]
    dom = _browse(env, f"/artifacts/artifact/{artifact.id}", tmp_path / "profile", "baseline", tmp_path / "lb.png")
    headers, rows = _table(dom)
    expected = leaderboard_rows(CampaignReport.model_validate_json((workspace / "report.json").read_text()))
    assert headers == list(expected[0]) and rows == [list(row.values()) for row in expected]
    assert "markdown-renderer__list" not in dom[dom.index("<table") : dom.index("</table>")], "no bullets"
    model = headers.index("model (or error)")
    in_sight = model == headers.index("test %") + 1  # right after the scores
    assert in_sight and all(row[model].startswith("models/") for row in rows[1:]), "in sight, workspace-relative"
    printed = subprocess.run(
        [sys.executable, "-m", "internflow.deployments.cli", "leaderboard", "-w", str(workspace)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    for row in expected:
        assert all(row[column] in printed for column in CLI_COLUMNS if column in ("acc %", "95% CI", "gain"))


@needs_chromium
def test_browser_shows_progress_and_learning_curves_as_images(triggered_campaign, campaign_artifacts, tmp_path) -> None:
    """Regression: the learning-curve image also showed its whole base64 text as a link."""
    env, *_ = triggered_campaign
    for key in ("campaign-progress", "learning-curve"):
        artifact = campaign_artifacts[key]
        dom = _browse(env, f"/artifacts/artifact/{artifact.id}", tmp_path / "profile", "File:", tmp_path / f"{key}.png")
        assert '<img src="data:image/png;base64,iVBOR' in dom, key
        assert "Image URL" not in dom and not re.search(r">\s*data:image/png;base64", dom), key


@needs_chromium
def test_browser_custom_run_form_shows_placeholders_in_descriptions(triggered_campaign, tmp_path) -> None:
    """Regression: the form dropped `<base_url>` and `<model>` as HTML tags (`openai::`)."""
    env, deployment, *_ = triggered_campaign
    dom = _browse(env, f"/deployments/deployment/{deployment.id}/run", tmp_path / "profile", "Planner (Optional)")
    text = _text(dom)
    assert "openai:<base_url>:<model>" in text and "bundled:<folder>" in text, text[:3000]
    assert "<method>/<variant>" in text and "Which seeded subset of the test split" in text


def test_overnight_deployment_is_stored_with_an_active_nightly_schedule(deployed_with_worker) -> None:
    from prefect.client.orchestration import get_client

    with _with_api(deployed_with_worker), get_client(sync_client=True) as client:
        overnight = client.read_deployment_by_name("campaign/overnight")
    (schedule,) = overnight.schedules
    assert schedule.active and schedule.schedule.cron == "0 22 * * *" and schedule.schedule.timezone == "UTC"
    assert overnight.parameters["config"]["time_budget_minutes"] == 480 and not overnight.paused


# Regression: on SQLAlchemy 2.1 Prefect 3.8.8's scheduler fails ("Can't evaluate bulk DML
# statement" in the server log) and no run is ever scheduled; the lock pins SQLAlchemy 2.0.
def test_overnight_deployment_shows_its_next_run(deployed_with_worker) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with _with_api(deployed_with_worker), get_client(sync_client=True) as client:
        overnight = client.read_deployment_by_name("campaign/overnight")
        deadline = time.monotonic() + 20  # the scheduler loops every 2 s here
        while True:
            scheduled = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[overnight.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                ),
            )
            if scheduled or time.monotonic() > deadline:
                break
            time.sleep(2)
    assert scheduled, "the scheduler created no run for the overnight deployment"
    first = min(r.expected_start_time for r in scheduled if r.expected_start_time)
    assert (first.hour, first.minute) == (22, 0)
    assert scheduled[0].parameters["config"]["time_budget_minutes"] == 480
