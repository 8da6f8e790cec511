"""The campaign digest: bounded however long the campaign, keeping what the planner needs."""

from __future__ import annotations

from internflow.agent.digest import approx_tokens, build_digest, records_from_results
from internflow.agent.guard import IterationRecord
from internflow.schemas import FailedIteration, IterationParams

FAILURE_CLASSES = ("nan_loss", "OutOfMemoryError", "divergence", "TimeoutError")


def synthetic_history(n: int) -> list[IterationRecord]:
    records = []
    for i in range(1, n + 1):
        params = IterationParams(learning_rate=1e-5 * (1 + i % 50), max_steps=10 + i)
        if i % 7 == 0:
            kind = FAILURE_CLASSES[(i // 7) % len(FAILURE_CLASSES)]
            records.append(
                IterationRecord(index=i, params=params, state="FAILED", verdict="failed", failure_class=kind)
            )
        else:
            accuracy = 0.3 + (0.5 if i == 43 else 0.0) + (i % 13) / 100
            records.append(
                IterationRecord(index=i, params=params, state="COMPLETED", accuracy=accuracy, verdict="no_change")
            )
    return records


def test_digest_of_200_iterations_stays_under_budget_and_keeps_best_recent_and_failures() -> None:
    records = synthetic_history(200)
    digest = build_digest(records, baseline=0.25, token_budget=800)
    assert digest.tokens <= 800 and approx_tokens(digest.text) == digest.tokens
    assert digest.total == 200 and 0 < len(digest.shown) < 200
    assert 43 in digest.shown  # the best
    assert {198, 199, 200} <= set(digest.shown)  # the most recent
    for kind in FAILURE_CLASSES:  # one of every failure class
        assert f"FAILED {kind}" in digest.text
    assert f"({200 - len(digest.shown)} iterations omitted)" in digest.text
    assert "200 iterations so far" in digest.text


def test_digest_budget_holds_for_every_size_and_a_tiny_budget() -> None:
    for n in (0, 1, 5, 50, 200, 1000):
        assert build_digest(synthetic_history(n), 0.25, token_budget=300).tokens <= 300
    assert build_digest(synthetic_history(200), 0.25, token_budget=10).tokens <= 10


def test_short_history_is_shown_in_full_in_order() -> None:
    digest = build_digest(synthetic_history(6), baseline=0.25, token_budget=2000)
    assert digest.shown == (1, 2, 3, 4, 5, 6)
    assert "omitted" not in digest.text
    lines = digest.text.splitlines()[1:]
    assert [line.split()[0] for line in lines] == [f"#{i}" for i in range(1, 7)]


def test_records_from_failed_iterations_carry_the_exception_class() -> None:
    failure = FailedIteration(index=1, params=IterationParams(), error="ValueError: init_from: 'best' needs ...")
    (record,) = records_from_results([], [failure])
    assert record.failed and record.failure_class == "ValueError"


def test_records_are_read_from_prefect_run_history_with_failure_class_and_guard_tag(
    prefect_harness, tmp_path, monkeypatch
) -> None:
    """A real failing research-iteration sub-flow (unknown dataset) read back from the Prefect API."""
    from prefect import flow, tags
    from prefect.runtime import flow_run

    from internflow.agent.digest import GUARD_TAG_PREFIX, read_iteration_records
    from internflow.flows.iteration import research_iteration
    from internflow.schemas import EvalResult, IterationContext

    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    baseline = EvalResult(
        label="baseline", benchmark="arithmetic", accuracy=0.25, n=8, n_correct=2, ci_low=0.0, ci_high=1.0,
        unparseable=0, samples_path="", runtime_s=0.0, split="dev",
    )  # fmt: skip
    context = IterationContext(
        index=1, workspace=str(tmp_path), base_model="unused", base_fingerprint="x", benchmark="arithmetic",
        eval_limit=8, baseline=baseline,
    )  # fmt: skip
    params = IterationParams(datasets=("no-such-dataset",))

    @flow(name="campaign-under-test")
    def parent() -> str:
        with tags(GUARD_TAG_PREFIX + "force"):
            research_iteration(params, context, "try a dataset that does not exist", return_state=True)
        return str(flow_run.id)

    (record,) = read_iteration_records(parent())
    assert record.index == 1 and record.params == params and record.state == "FAILED"
    assert record.failure_class == "UnknownDatasetError" and "no-such-dataset" in record.error
    assert record.guard_action == "force" and record.rationale == "try a dataset that does not exist"
