"""Plumbing every training method shares, written once: arguments, data, model loading,
checkpoint resume, trackio logging, OOM back-off, saving and the typed result.

A method module (`sft`, `dpo`, `grpo`) adds only its config class (on `configs`) and how to build
its trainer; this module loads it by name (`registry.get_method`) and never the other way round.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from internflow.disk import free_bytes, gib, is_disk_full
from internflow.schemas import LossPoint, TrainFailure, TrainRequest, TrainResult
from internflow.training.arguments import trl_arguments
from internflow.training.data_check import check_training_data
from internflow.training.device import DeviceFacts, device_arguments
from internflow.training.oom import OutOfMemoryFailure, train_with_backoff
from internflow.training.registry import get_method
from internflow.training.results import FAILURE_FILE, RESULT_FILE, RESULT_MARKER, finished_result

if TYPE_CHECKING:
    from collections.abc import Callable

    from datasets import Dataset
    from transformers import Trainer, TrainerControl, TrainerState, TrainingArguments

__all__ = [
    "CHECKPOINT_MINUTES_ENV",
    "SaveEveryMinutes",
    "TrackioSteps",
    "base_arguments",
    "checkpoint_minutes",
    "last_checkpoint",
    "main",
    "run_training",
]

# A checkpoint at least this often (minutes) besides the step cadence; the variable overrides it.
CHECKPOINT_MINUTES_ENV = "INTERNFLOW_CHECKPOINT_MINUTES"
DEFAULT_CHECKPOINT_MINUTES = 2.0


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest complete checkpoint (one a kill -9 interrupted lacks trainer_state.json)."""
    complete = [p for p in output_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return str(max(complete, key=_checkpoint_step)) if complete else None


def _checkpoint_step(checkpoint: str | Path) -> int:
    return int(str(checkpoint).rsplit("-", 1)[-1])


def checkpoint_minutes() -> float:
    """The time cadence of checkpoints, from INTERNFLOW_CHECKPOINT_MINUTES (default 2)."""
    raw = os.environ.get(CHECKPOINT_MINUTES_ENV)
    if not raw:
        return DEFAULT_CHECKPOINT_MINUTES
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise ValueError(f"{CHECKPOINT_MINUTES_ENV}: expected a number of minutes > 0, got {raw!r}")
    return minutes


class SaveEveryMinutes(TrainerCallback):
    """Asks for a checkpoint once `minutes` have passed since the last one (or the start), so a kill
    loses at most that much training however slow the steps are; the step cadence still applies.
    (On a loaded 2-core machine 8 SmolLM2 steps took 5.5 min: a step cadence alone lost all of it.)"""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self._last = time.monotonic()

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._last = time.monotonic()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if time.monotonic() - self._last >= self.seconds:
            control.should_save = True

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._last = time.monotonic()


def base_arguments(request: TrainRequest, device: DeviceFacts | None = None) -> dict[str, Any]:
    """The TRL config arguments of this run: the iteration's parameters (`arguments.TRL_ARGUMENTS`,
    for its method), the run's plumbing, and what the device (probed when not given) changes
    (`internflow.training.device`)."""
    params = request.params
    steps = params.trained_steps()[0]
    return (
        trl_arguments(params)
        | {
            "output_dir": request.checkpoint_dir,
            "run_name": request.run_name,
            "project": request.trackio_project,
            "report_to": "none",  # trackio through `TrackioSteps`, which survives a resume
            "save_strategy": "steps",
            # A checkpoint every fifth of the run: a crash loses at most that much.
            "save_steps": max(10, steps // 5),
            "save_total_limit": 1,
            "disable_tqdm": True,
            "dataloader_num_workers": 0,
        }
        | device_arguments(params, device or DeviceFacts.probe())
    )


def load_training_data(request: TrainRequest, columns: tuple[str, ...]) -> Dataset:
    from datasets import load_dataset

    cache = str(Path(request.checkpoint_dir) / "hf-datasets")
    dataset = load_dataset("json", data_files=request.data.path, split="train", cache_dir=cache)
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"data: {request.data.path} lacks column(s) {missing} that method {request.params.method!r} needs "
            f"(expected {list(columns)}, found {dataset.column_names})"
        )
    return dataset


class TrackioSteps(TrainerCallback):
    """Logs to trackio at the trainer's global step, each step exactly once, across resumes.

    transformers' own TrackioCallback lets trackio number the steps, so a resumed run logs the
    replayed steps again under new numbers.  This one skips steps trackio already holds, and
    backfills from the checkpoint's log history the steps a kill -9 kept trackio from writing.
    One instance serves every OOM retry of a run.
    """

    def __init__(self, project: str, run: str, config: dict[str, Any]) -> None:
        import trackio  # noqa: F401  (~0.5 s: paid before training starts, as transformers' callback does)

        self.project, self.run, self.config = project, run, config
        self._logged_through: int | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        import trackio
        from trackio.sqlite_storage import SQLiteStorage

        if self._logged_through is None:
            self._logged_through = SQLiteStorage.get_max_step_for_run(self.project, self.run) or 0
            trackio.init(project=self.project, name=self.run, resume="allow", config=self.config)
        for entry in state.log_history:  # restored from the checkpoint when resuming
            self._log(entry)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._log({**(logs or {}), "step": state.global_step})

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        import trackio

        trackio.finish()

    def _log(self, entry: dict[str, Any]) -> None:
        import trackio
        from transformers.integrations.integration_utils import rewrite_logs

        step = entry.get("step")
        # The end-of-training summary (train_runtime, ...) repeats the last step: it goes to result.json.
        if not isinstance(step, int) or step <= (self._logged_through or 0) or "train_runtime" in entry:
            return
        metrics = {k: v for k, v in entry.items() if k != "step" and isinstance(v, int | float)}
        trackio.log(rewrite_logs(metrics), step=step)
        self._logged_through = step


def run_training(request: TrainRequest) -> TrainResult:
    from internflow.models import load_model_and_tokenizer

    params = request.params
    method = get_method(params.method)
    started = time.monotonic()
    output_dir = Path(request.checkpoint_dir)
    # Every column the trainer and its rewards read, in every row, before the model loads.
    dataset = load_training_data(request, check_training_data(request))
    arguments = base_arguments(request)
    tracker = TrackioSteps(request.trackio_project, request.run_name, params.model_dump(mode="json"))
    callbacks = [tracker, SaveEveryMinutes(checkpoint_minutes())]
    resumed_from = last_checkpoint(output_dir)  # a crashed earlier run of this same request

    def build_trainer(
        batch_size: int, accumulation: int, gradient_checkpointing: bool = arguments["gradient_checkpointing"]
    ) -> Trainer:
        """A fresh trainer around a freshly loaded model: nothing of an attempt that ran out of memory."""
        config = method.make_config(
            request,
            arguments
            | {
                "per_device_train_batch_size": batch_size,
                "gradient_accumulation_steps": accumulation,
                "gradient_checkpointing": gradient_checkpointing,
            },
        )
        model, tokenizer = load_model_and_tokenizer(request.init_model)
        return method.make_trainer(model, tokenizer, dataset, config, request, callbacks)

    if resumed_from is not None and _checkpoint_step(resumed_from) >= arguments["max_steps"]:
        # Killed after its last step (e.g. while saving the model): resuming would train past its steps
        # (max_steps, or a screen's share of them).
        trainer, batch_size, accumulation = _finished_checkpoint(resumed_from, build_trainer, arguments, tracker)
    else:
        trainer, batch_size, accumulation = train_with_backoff(
            build_trainer,
            batch_size=arguments["per_device_train_batch_size"],
            accumulation=arguments["gradient_accumulation_steps"],
            floor=params.min_per_device_train_batch_size,
            checkpoint=lambda: last_checkpoint(output_dir),
            gradient_checkpointing=arguments["gradient_checkpointing"],
        )

    model_path, adapter_path = _save(trainer, Path(request.model_dir), merge_lora=params.use_lora)
    history = trainer.state.log_history
    losses = tuple(LossPoint(step=int(e["step"]), loss=float(e["loss"])) for e in history if "loss" in e)
    rewards = tuple(LossPoint(step=int(e["step"]), loss=float(e["reward"])) for e in history if "reward" in e)
    return TrainResult(
        model_path=str(model_path),
        adapter_path=None if adapter_path is None else str(adapter_path),
        adapter_base=request.init_model if adapter_path is not None else None,
        steps=trainer.state.global_step,
        losses=losses,
        final_loss=losses[-1].loss if losses else None,
        rewards=rewards,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        resumed_from_step=int(resumed_from.rsplit("-", 1)[-1]) if resumed_from else None,
        runtime_s=time.monotonic() - started,
        trackio_project=request.trackio_project,
        trackio_run=request.run_name,
        checkpoint_dir=str(output_dir),
    )


def _finished_checkpoint(
    checkpoint: str, build_trainer: Callable[[int, int], Trainer], arguments: dict[str, Any], tracker: TrackioSteps
) -> tuple[Trainer, int, int]:
    """A trainer holding the weights and state of a checkpoint taken at the last step, without a
    step more; trackio gets any of its steps a kill kept from being logged."""
    from transformers import TrainerState

    state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    # The batch the run ended with (OOM back-off may have halved it), the effective batch unchanged.
    batch_size = state.train_batch_size or arguments["per_device_train_batch_size"]
    effective = arguments["per_device_train_batch_size"] * arguments["gradient_accumulation_steps"]
    accumulation = max(1, effective // batch_size)
    trainer = build_trainer(batch_size, accumulation)
    # The loader train(resume_from_checkpoint=...) itself uses: full weights, or a LoRA adapter.
    trainer._load_from_checkpoint(checkpoint)
    trainer.state = state
    tracker.on_train_begin(trainer.args, state, trainer.control)
    tracker.on_train_end(trainer.args, state, trainer.control)
    return trainer, batch_size, accumulation


ADAPTER_DIR = "lora-adapter"


def _save(trainer: Trainer, model_path: Path, *, merge_lora: bool) -> tuple[Path, Path | None]:
    """A plain HF model folder (a LoRA adapter merged in), whatever the method; LoRA runs also keep
    the adapter alone, which a vLLM server already serving the base model can hot-load.  Written
    to a staging folder renamed into place: a kill mid-save leaves no half model behind."""
    trained = trainer.model
    assert trained is not None
    staging = model_path.with_name(model_path.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    if merge_lora:
        trained.save_pretrained(staging / ADAPTER_DIR)  # type: ignore[operator]
        trained = trained.merge_and_unload()  # type: ignore[operator]  # a PeftModel here
    trained.save_pretrained(staging)  # type: ignore[operator]
    assert trainer.processing_class is not None
    trainer.processing_class.save_pretrained(staging)
    shutil.rmtree(model_path, ignore_errors=True)
    staging.rename(model_path)
    return model_path, (model_path / ADAPTER_DIR if merge_lora else None)


def main(argv: list[str]) -> int:
    """`python -m internflow.training REQUEST.json`: result.json on success, failure.json otherwise."""
    if len(argv) != 2:
        print("usage: python -m internflow.training REQUEST.json", file=sys.stderr)
        return 2
    request = TrainRequest.model_validate_json(Path(argv[1]).read_text())
    output_dir = Path(request.checkpoint_dir)
    done = finished_result(request)
    if done is not None:  # finished before: a re-run must not train a step more
        print(RESULT_MARKER + json.dumps(done.model_dump(mode="json")), flush=True)
        return 0
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = run_training(request)
    except OutOfMemoryFailure as error:
        (output_dir / FAILURE_FILE).write_text(error.failure.model_dump_json(indent=2))
        print(f"internflow: {error.failure.message}", file=sys.stderr, flush=True)
        return 3
    except Exception as error:
        if is_disk_full(error):
            message = f"no space left for {output_dir} ({gib(free_bytes(output_dir))} free): {error}"
            _write_failure(output_dir, TrainFailure(kind="disk_full", message=message[:2000]))
            print(f"internflow: out of disk space: {message[:500]}", file=sys.stderr, flush=True)
            return 4
        _write_failure(output_dir, TrainFailure(kind="error", message=f"{type(error).__name__}: {error}"))
        raise
    (output_dir / RESULT_FILE).write_text(result.model_dump_json(indent=2))
    print(RESULT_MARKER + json.dumps(result.model_dump(mode="json")), flush=True)
    return 0


def _write_failure(output_dir: Path, failure: TrainFailure) -> None:
    try:
        (output_dir / FAILURE_FILE).write_text(failure.model_dump_json(indent=2))
    except OSError:  # the disk may be too full even for this: the printed line still says why
        with contextlib.suppress(OSError):
            (output_dir / FAILURE_FILE).unlink()  # no half-written failure.json
