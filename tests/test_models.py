"""Base-model resolution: the embedded SmolLM2, local folders, Hub ids, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internflow.models import DEFAULT_MODEL, ModelNotFoundError, model_fingerprint, resolve_model


def test_local_folder_and_hub_id_resolve(tiny_model: Path) -> None:
    assert resolve_model(str(tiny_model)) == str(tiny_model.resolve())
    assert resolve_model("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"


@pytest.mark.parametrize("model", ["/no/such/folder", "./relative-missing", "not a model"])
def test_unknown_model_is_refused_with_the_reason(model: str) -> None:
    with pytest.raises(ModelNotFoundError, match="model:"):
        resolve_model(model)


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_fingerprint_changes_with_the_config(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(tiny_model, tmp_path / "copy"))
    assert model_fingerprint(str(copy)) == model_fingerprint(str(tiny_model))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(config | {"rope_theta": 1234.0}))
    assert model_fingerprint(str(copy)) != model_fingerprint(str(tiny_model))


@pytest.mark.slow
def test_embedded_smollm2_is_a_plain_trainable_hf_folder() -> None:
    """Regression: a GGUF-loaded model keeps `quantization_config`, and Trainer refuses to train it."""
    from transformers import AutoConfig, AutoTokenizer

    folder = Path(resolve_model(DEFAULT_MODEL))
    assert (folder / "model.safetensors").stat().st_size > 500_000_000  # fp32, de-quantized
    config = AutoConfig.from_pretrained(folder)
    assert getattr(config, "quantization_config", None) is None
    assert "gguf" not in json.dumps(config.to_dict()).lower()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


def test_a_model_without_a_chat_template_is_refused_naming_it_and_the_fix(tiny_model: Path, tmp_path: Path) -> None:
    from internflow.models import NoChatTemplateError, load_chat_tokenizer
    from tests.tiny_model import as_base_model

    base = as_base_model(tiny_model, tmp_path / "base")
    with pytest.raises(NoChatTemplateError, match=f"model: {base} has no chat template") as refused:
        load_chat_tokenizer(str(base))
    assert "tokenizer.chat_template" in str(refused.value) and "instruct" in str(refused.value)


def test_a_model_without_a_pad_token_is_evaluated_with_eos_as_pad(tiny_model: Path, tmp_path: Path) -> None:
    from internflow.benchmarks import get_benchmark
    from internflow.evaluation.lighteval_models import InProcessTransformersModel
    from internflow.evaluation.lighteval_tasks import run_lighteval
    from internflow.models import load_chat_tokenizer
    from tests.tiny_model import as_base_model

    no_pad = as_base_model(tiny_model, tmp_path / "no-pad", chat_template=True)
    tokenizer = load_chat_tokenizer(str(no_pad))
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"
    benchmark = get_benchmark("arithmetic")
    model = InProcessTransformersModel(str(no_pad), str(tmp_path / "cache"))
    rows = run_lighteval(benchmark, benchmark.load("test")[:3], model, tmp_path / "work")
    assert len(rows) == 3 and all(row["output"] for row in rows)  # a batch of three: padded with eos
