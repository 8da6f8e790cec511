"""Tiny in-process training sets in each method's format (doubling numbers), for training tests."""

from __future__ import annotations

import json
from pathlib import Path

from internflow.schemas import IterationParams, PreparedDataset, TrainRequest

__all__ = ["method_data", "method_request"]


def method_data(folder: Path, method: str, rows: int = 64) -> PreparedDataset:
    lines = []
    for a in range(rows):
        prompt = [{"role": "user", "content": f"{a} + {a} ="}]
        answer = str(2 * a)
        if method == "sft":
            lines.append({"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]})
        elif method == "dpo":
            chosen = [{"role": "assistant", "content": answer}]
            rejected = [{"role": "assistant", "content": f"{2 * a + 1} I think"}]
            lines.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
        else:
            lines.append({"prompt": prompt, "answer": answer})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{method}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return PreparedDataset(path=str(path), rows=rows, sources=(), fingerprint=f"test-{method}")


def method_request(model: Path, folder: Path, run: str, **params: object) -> TrainRequest:
    method = str(params.get("method", "sft"))
    settings = {
        "max_steps": 6,
        "per_device_train_batch_size": 8,
        "learning_rate": 1e-2,
        "warmup_steps": 0,
        "lr_scheduler_type": "constant_with_warmup",
        "max_length": 64,
    } | params
    return TrainRequest(
        init_model=str(model),
        init_fingerprint="tiny",
        data=method_data(folder / "data", method),
        params=IterationParams.model_validate(settings),
        checkpoint_dir=str(folder / "checkpoints" / run),
        model_dir=str(folder / "models" / run),
        trackio_dir=str(folder / "trackio"),
        trackio_project="test",
        run_name=run,
    )
