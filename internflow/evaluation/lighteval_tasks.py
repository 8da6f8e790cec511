"""A benchmark's test items as a lighteval task, scored by a lighteval pipeline.

The task's data is the exact item subset the campaign chose (written as a local JSONL dataset),
its prompt function renders each item with the benchmark's own prompt, and its one metric
extracts the answer and judges it with the benchmark's own rules.  The pipeline runs the model
(a vLLM server or transformers, see lighteval_models) and scores every sample.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import numpy as np
from lighteval.logging.evaluation_tracker import EvaluationTracker
from lighteval.metrics.metrics_sample import SampleLevelComputation
from lighteval.metrics.utils.metric_utils import SampleLevelMetric
from lighteval.models.abstract_model import LightevalModel
from lighteval.models.model_output import ModelResponse
from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters
from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.requests import Doc, SamplingMethod

from internflow.benchmarks import Benchmark, BenchmarkItem

__all__ = ["BenchmarkJudge", "run_lighteval", "task_config", "write_items"]

_SUITE = "custom"  # lighteval registers only its known suites; "custom" is the one for user tasks


class BenchmarkJudge(SampleLevelComputation):
    """1.0 when the answer extracted from the generation is judged correct by the benchmark."""

    def __init__(self, benchmark: Benchmark) -> None:
        self.benchmark = benchmark

    def compute(self, model_response: ModelResponse, doc: Doc, **kwargs: Any) -> float:
        extracted = self.benchmark.extract(model_response.final_text[0])
        return float(extracted is not None and self.benchmark.judge(extracted, doc.choices[doc.gold_index]))


def write_items(items: list[BenchmarkItem], folder: Path) -> Path:
    """The items as a local dataset folder (`test.jsonl`), what the task's `hf_repo` points at."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test.jsonl").write_text("".join(item.model_dump_json() + "\n" for item in items), encoding="utf-8")
    return folder


def task_config(benchmark: Benchmark, data_folder: Path) -> LightevalTaskConfig:
    def prompt(line: dict[str, Any], task_name: str = "") -> Doc:
        item = BenchmarkItem.model_validate({k: v for k, v in line.items() if not k.startswith("__")})
        return Doc(
            task_name=task_name,
            query=benchmark.prompt(item),
            choices=[item.answer],
            gold_index=0,
            id=item.id,
            specific={"id": item.id},
        )

    accuracy = SampleLevelMetric(
        metric_name="accuracy",
        higher_is_better=True,
        category=SamplingMethod.GENERATIVE,
        sample_level_fn=BenchmarkJudge(benchmark),
        corpus_level_fn=np.mean,
    )
    return LightevalTaskConfig(
        name=benchmark.name,
        suite=[_SUITE],
        prompt_function=prompt,
        hf_repo=str(data_folder),
        hf_subset="default",
        hf_avail_splits=["test"],
        evaluation_splits=["test"],
        metrics=[accuracy],
        generation_size=benchmark.max_new_tokens,
        stop_sequence=[],
    )


def run_lighteval(
    benchmark: Benchmark, items: list[BenchmarkItem], model: LightevalModel, work_dir: Path
) -> list[dict[str, Any]]:
    """Score `model` on `items`; one row per item, in the items' order: prompt, output, extracted
    answer, expected answer, correctness (lighteval's metric value) and `over_length` (the prompt
    did not fit the model's context, so it was not answered and is scored wrong)."""
    config = task_config(benchmark, write_items(items, work_dir / "data"))
    tasks_module = types.ModuleType(f"internflow_eval_{benchmark.name}")
    tasks_module.__dict__["TASKS_TABLE"] = [config]
    tasks_module.__file__ = __file__  # lighteval logs where custom tasks came from
    pipeline = Pipeline(
        tasks=f"{_SUITE}|{benchmark.name}|0",
        pipeline_parameters=PipelineParameters(
            launcher_type=ParallelismManager.NONE,
            custom_tasks_directory=tasks_module,  # type: ignore[arg-type]  # the registry takes a module too
            remove_reasoning_tags=False,  # the answer is judged on exactly what the model wrote
        ),
        evaluation_tracker=EvaluationTracker(output_dir=str(work_dir / "lighteval"), save_details=False),
        model=model,
    )
    pipeline.evaluate()
    over_length: dict[str, int] = getattr(model, "over_length", {})
    by_id = {}
    for details in pipeline.get_details().values():
        for detail in details:
            output = detail.model_response.final_text[0]
            by_id[detail.doc.specific["id"]] = {
                "id": detail.doc.specific["id"],
                "prompt": detail.doc.query,
                "output": output,
                "extracted": benchmark.extract(output),
                "expected": detail.doc.choices[detail.doc.gold_index],
                "correct": bool(detail.metric["accuracy"]),
                "over_length": detail.doc.specific["id"] in over_length,
            }
    missing = [item.id for item in items if item.id not in by_id]
    if missing:
        raise RuntimeError(f"lighteval returned no result for {len(missing)} items, e.g. {missing[:3]}")
    return [by_id[item.id] for item in items]


def dump_samples(samples: list[dict[str, Any]], path: Path) -> None:
    path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8")
