"""A small typed campaign report (baseline, two finished iterations, one failed) for tests of what is
rendered from it: leaderboard, progress plot, log lines."""

from __future__ import annotations

from internflow.schemas import (
    CampaignConfig,
    CampaignReport,
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


def evaluation(accuracy: float, n: int = 200, ci: tuple[float, float] = (0.0, 1.0), split: str = "dev") -> EvalResult:
    return EvalResult(
        label="eval", benchmark="arithmetic", accuracy=accuracy, n=n, n_correct=round(accuracy * n),
        ci_low=ci[0], ci_high=ci[1], unparseable=0, samples_path="samples.jsonl", runtime_s=18.2, backend="vllm",
        split=split,
    )  # fmt: skip


def iteration(
    index: int, accuracy: float, baseline: float, workspace: str, finished_s: float | None, **params: object
) -> IterationResult:
    p = IterationParams.model_validate({"max_steps": 40, **params})
    return IterationResult(
        index=index, params=p, rationale=f"why {index}: loss still falling | try it",
        literature=LiteratureReport(query="q", status="offline"),
        data=PreparedDataset(path="train.jsonl", rows=8, sources=(), fingerprint="f"),
        train=TrainResult(model_path=f"{workspace}/models/sft-{index}", steps=40, losses=(), final_loss=0.31,
                          runtime_s=120.0, trackio_project="internflow", trackio_run=f"sft-{index}",
                          checkpoint_dir=f"{workspace}/checkpoints/sft-{index}"),
        evaluation=evaluation(accuracy, ci=(accuracy - 0.065, accuracy + 0.056)),
        diagnosis=Diagnosis(verdict="improved", gain_vs_baseline=accuracy - baseline, gain_vs_best=None,
                            findings=()),
        wall_s=160.0, finished_s=finished_s,
    )  # fmt: skip


def sample_report(workspace: str, finished: bool = True) -> CampaignReport:
    """Baseline 26.5 % on dev; iteration 1 at 74.0 % (the best), 2 at 67.0 %, 3 failed out of memory;
    on test, scored once at the end: baseline 25.0 %, the best 71.0 %."""
    base = 0.265
    times = (200.0, 390.0, 400.0) if finished else (None, None, None)
    failure = FailedIteration(
        index=3, params=IterationParams(learning_rate=5e-5, max_steps=40), error="TrainingFailed: out of memory",
        findings=(Finding(kind="out_of_memory", severity="error", message="OOM", direction="use_lora"),),
        finished_s=times[2],
    )  # fmt: skip
    return CampaignReport(
        config=CampaignConfig(workspace=workspace, max_iterations=3),
        base_model="/cache/smollm2-135m",
        baseline=evaluation(base, ci=(0.209, 0.330)),
        iterations=(
            iteration(1, 0.74, base, workspace, times[0], learning_rate=1e-4),
            iteration(2, 0.67, base, workspace, times[1], learning_rate=2e-4),
        ),
        failures=(failure,),
        best_iteration=1,
        best_score=0.74,
        best_model_path=f"{workspace}/models/sft-1",
        stop_reason="iteration budget spent (3 of 3)",
        elapsed_s=400.0,
        flow_run_id="run-id",
        dev_source="the bundled dev split",
        test_baseline=evaluation(0.25, ci=(0.195, 0.314), split="test"),
        test_best=evaluation(0.71, ci=(0.643, 0.769), split="test"),
    )
