"""A vLLM OpenAI-compatible server for the model under test, run from vLLM's own environment.

vLLM's pins clash with the main environment's (the CPU build wants mcp>=2, its own transformers),
so it lives in a virtual environment of its own (`make vllm-env` builds `.venv-vllm`) and we talk
to it over HTTP only.  The server is started behind `internflow.evaluation.watchdog`, which takes
the server's whole process tree down when we stop it, when we fail, when we are cancelled, and
when our process dies without a word (SIGKILL).

One server can stay up for a whole campaign: it serves the base model with runtime LoRA loading
on, and each iteration trained with LoRA is evaluated by loading its adapter into it
(`load_adapter`).  A full fine-tune is a different model, so it needs a server of its own.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field

from internflow.child_env import HUB_TOKEN_NAMES, child_env, needs_hub_token
from internflow.http import ServerNotReadyError, wait_until_healthy
from internflow.schemas import ServedModel

__all__ = [
    "SERVED_NAME",
    "EvalServerError",
    "exclusive_use",
    "load_adapter",
    "load_weights",
    "reachable",
    "served_model_name",
    "ServerSettings",
    "VLLMServer",
    "vllm_python",
]

SERVED_NAME = "model-under-test"
# `make vllm-env` puts it here; INTERNFLOW_VLLM_PYTHON points anywhere else (a GPU `vllm` install).
_DEFAULT_ENV = Path(__file__).resolve().parents[2] / ".venv-vllm"


class EvalServerError(RuntimeError):
    """The vLLM server could not be found, started or used; the message says which and why."""


class ServerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_model_len: int = Field(
        4096, ge=64, description="Longest prompt + answer the server accepts (at most the model's own limit)."
    )
    max_lora_rank: int = Field(64, ge=1, description="Largest LoRA rank that can be hot-loaded.")
    max_loras: int = Field(4, ge=1, description="Adapters resident at once (older ones are swapped out).")
    cpu_kv_cache_gib: float = Field(1.0, gt=0, description="KV cache on the CPU build (its memory is not a GPU's).")
    startup_timeout_s: float = Field(600.0, gt=0)
    dtype: str | None = Field(
        None,
        description="vLLM --dtype; default: auto on GPU, bfloat16 on a CPU with AMX/AVX512-BF16 (twice fp32's "
        "speed there), else float32.  float32 reproduces the transformers backend's greedy answers exactly.",
    )


def vllm_python() -> str:
    """The python of vLLM's environment, or an error that says how to get one."""
    configured = os.environ.get("INTERNFLOW_VLLM_PYTHON")
    candidate = Path(configured) if configured else _DEFAULT_ENV / "bin" / "python"
    if not candidate.is_file():
        where = f"INTERNFLOW_VLLM_PYTHON={configured}" if configured else str(candidate)
        raise EvalServerError(
            f"eval_backend 'vllm': no vLLM environment at {where}. Build it with `make vllm-env` (the CPU "
            "build), or set INTERNFLOW_VLLM_PYTHON to a python that has `vllm` installed, or choose "
            "eval_backend='transformers' (in-process, slower) explicitly."
        )
    return str(candidate)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _default_dtype() -> str:
    if _on_gpu():
        return "auto"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    # Measured on this project's 2-core Xeon (AMX): bf16 answers 100 arithmetic items in 6 s, fp32 in 14 s.
    return "bfloat16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "float32"


class VLLMServer:
    """One `vllm` OpenAI-compatible server process tree; a context manager that always cleans up."""

    def __init__(self, model_path: str, log_dir: Path, settings: ServerSettings | None = None) -> None:
        self.model_path = model_path
        self.settings = settings or ServerSettings()
        self.log_dir = log_dir
        self.port = 0
        self.log_path: Path | None = None
        self.startup_s: float | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def dtype(self) -> str:
        return self.settings.dtype or _default_dtype()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self, port: int) -> list[str]:
        args = [
            vllm_python(), "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model_path, "--served-model-name", SERVED_NAME,
            "--host", "127.0.0.1", "--port", str(port),
            "--max-model-len", str(self._max_model_len()),
            "--enable-lora", "--max-lora-rank", str(self.settings.max_lora_rank),
            "--max-loras", str(self.settings.max_loras),
            "--generation-config", "vllm",  # greedy means greedy: ignore the model's sampling defaults
            "--seed", "0",
        ]  # fmt: skip
        args += ["--dtype", self.dtype]
        return args

    def _max_model_len(self) -> int:
        """The settings' length, capped by the model's position limit (vLLM refuses a longer one)."""
        from transformers import AutoConfig

        limit = getattr(AutoConfig.from_pretrained(self.model_path), "max_position_embeddings", None)
        return min(self.settings.max_model_len, int(limit)) if limit else self.settings.max_model_len

    def start(self) -> VLLMServer:
        if self.running:
            return self
        self.port = _free_port()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"vllm-{self.port}.log"
        # Runtime LoRA loading, and the dev endpoints (/collective_rpc, /reset_prefix_cache) through
        # which another model's weights are reloaded in place; the server listens on 127.0.0.1 only.
        # No credentials, except the Hub token when the model is a Hub id vLLM has to download.
        keep = HUB_TOKEN_NAMES if needs_hub_token(self.model_path) else ()
        env = child_env({"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_SERVER_DEV_MODE": "1"}, keep=keep)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{self.settings.cpu_kv_cache_gib:g}")
        # vLLM's CPU build keeps a core for its scheduler by default; on a small machine that halves
        # the cores left for the model (measured: 3.6 → 6.4 answers/s on 2 cores, bench/eval_throughput.py).
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        env.pop("PYTHONPATH", None)  # vLLM's environment must not import the main one's packages
        watchdog = [sys.executable, "-m", "internflow.evaluation.watchdog", "--"]
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                watchdog + self.command(self.port), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        timeout_s = self.settings.startup_timeout_s
        try:
            wait_until_healthy(f"http://127.0.0.1:{self.port}/health", self._process, timeout_s, started=started)
        except ServerNotReadyError as error:
            what = "exited during start-up" if error.exited else f"was not ready after {timeout_s:.0f} s"
            raise EvalServerError(
                f"vLLM server for {self.model_path} {what}; last lines of {self.log_path}:\n" + self.log_tail()
            ) from error

    def log_tail(self, lines: int = 25) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()  # the watchdog stops the server's whole session, then exits
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def served(self) -> ServedModel:
        # On CPU vLLM applies LoRA by gathering each token's adapter weights (measured 8x slower than
        # the plain model for a rank-8 adapter on SmolLM2), while a weight reload takes well under a
        # second: there every model is evaluated by reloading its weights.  GPUs have fast LoRA kernels.
        on_gpu = _on_gpu()
        return ServedModel(
            base_url=self.base_url,
            model=SERVED_NAME,
            model_path=self.model_path,
            hot_load_adapters=on_gpu,
            reload_updates_tied_head=on_gpu,
            dtype=self.dtype,
        )


def _post(url: str, body: dict[str, Any] | None, doing: str) -> requests.Response:
    """POST to a server's management endpoint; a connection failure is an EvalServerError saying what
    we were doing (the caller judges the status, since "already loaded" can be fine)."""
    try:
        return requests.post(url, json=body, timeout=600)
    except requests.RequestException as error:
        raise EvalServerError(f"{url}: could not {doing}: {error}") from error


def load_adapter(server: ServedModel, name: str, adapter_path: str) -> ServedModel:
    """Hot-load a LoRA adapter trained on the server's model; requests naming `name` then use it.
    Loading the same name twice is harmless (an adapter's name is its training run's fingerprint)."""
    url = f"{server.base_url.rstrip('/')}/load_lora_adapter"
    response = _post(url, {"lora_name": name, "lora_path": adapter_path}, f"load LoRA adapter {adapter_path}")
    if response.status_code != 200 and "already" not in response.text:
        raise EvalServerError(
            f"{url} refused LoRA adapter {adapter_path} ({response.status_code}): {response.text[:500]}. "
            "The server needs --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True."
        )
    return server.model_copy(update={"model": name})


def tied_embeddings_changed(base_path: str, model_path: str) -> bool:
    """Whether `model_path` ties its output layer to its embeddings and its embeddings differ from
    `base_path`'s (a full fine-tune; a merged LoRA adapter leaves them as they were)."""
    import json

    import torch
    from safetensors import safe_open

    config = json.loads((Path(model_path) / "config.json").read_text())
    if not config.get("tie_word_embeddings", False):
        return False

    def embeddings(folder: str) -> torch.Tensor | None:
        for file in sorted(Path(folder).glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as weights:
                name = next((k for k in weights.keys() if k.endswith("embed_tokens.weight")), None)  # noqa: SIM118
                if name is not None:
                    return weights.get_tensor(name)
        return None

    base, tuned = embeddings(base_path), embeddings(model_path)
    return base is None or tuned is None or not torch.equal(base, tuned)


def load_weights(server: ServedModel, model_path: str) -> ServedModel:
    """Reload the running server's weights in place from `model_path` (a fine-tune of the model it
    serves: same architecture and shapes), and drop its prefix cache, whose keys and values were
    computed with the old weights.  Needs the server's dev endpoints (VLLM_SERVER_DEV_MODE=1).
    `EvalServerError` when a reload would leave a tied output layer stale (vLLM's CPU build)."""
    if not server.reload_updates_tied_head and tied_embeddings_changed(server.model_path, model_path):
        raise EvalServerError(
            f"{model_path} ties its output layer to embeddings that training changed, and an in-place reload on "
            "this vLLM build keeps the old output layer"
        )
    root = server.base_url.rstrip("/").removesuffix("/v1")
    calls: tuple[tuple[str, dict[str, Any] | None], ...] = (
        ("collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": model_path}}),
        ("reset_prefix_cache", None),
    )
    for endpoint, body in calls:
        response = _post(f"{root}/{endpoint}", body, f"reload weights from {model_path}")
        if response.status_code != 200:
            raise EvalServerError(
                f"{root}/{endpoint} refused to reload weights from {model_path} ({response.status_code}): "
                f"{response.text[:500]}"
            )
    return server


def reachable(server: ServedModel | None, timeout_s: float = 5.0) -> bool:
    """Whether this process can reach `server`: a worker on another machine cannot reach a
    campaign's server on 127.0.0.1, and then evaluates on a server of its own."""
    if server is None:
        return False
    try:
        return requests.get(f"{server.base_url.rstrip('/')}/models", timeout=timeout_s).ok
    except requests.RequestException:
        return False


@contextmanager
def exclusive_use(server: ServedModel | None, lock_dir: Path) -> Iterator[None]:
    """Hold the campaign's server alone while its weights are reloaded and its answers read:
    iterations evaluated at the same time (threads, or worker processes on this machine) would
    otherwise reload each other's weights mid-evaluation, LoRA adapters included (they sit on the
    base weights).  A file lock per server port; a server that never reloads needs none."""
    if server is None or not server.reload_weights:
        yield
        return
    port = server.base_url.split("://", 1)[-1].split("/", 1)[0].replace(":", "-")
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"eval-server-{port}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def served_model_name(base_url: str) -> str:
    """The model a user's OpenAI-compatible server serves (its first listed model)."""
    root = base_url.rstrip("/")
    try:
        response = requests.get(f"{root}/models", timeout=30)
        response.raise_for_status()
        models = response.json()["data"]
    except (requests.RequestException, ValueError, KeyError) as error:
        raise EvalServerError(f"eval_endpoint: {root}/models did not list a served model: {error}") from error
    if not models:
        raise EvalServerError(f"eval_endpoint: {root} serves no model")
    return str(models[0]["id"])
