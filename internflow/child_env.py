"""The environment a child process gets: ours, less the secrets it has no use for.

Children (the training process, vLLM behind its watchdog, the temporary Prefect server, the
trackio reader) used to inherit every variable, so `HF_TOKEN`, `OPENAI_API_KEY` and the like sat
in processes that never call the service they unlock (and in their /proc/<pid>/environ).  Here a
variable whose name looks like a credential is dropped unless the caller names it in `keep`:
the training child keeps `HF_TOKEN` only when its starting model is a Hub id, vLLM only when
it has a Hub model to download.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["HUB_TOKEN_NAMES", "child_env", "is_secret_name", "needs_hub_token"]

# Names, not values: what credentials are called by the services we (or a user's shell) talk to.
# A name part, between underscores: HF_TOKEN, OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY, PREFECT_API_AUTH_STRING
# (not TOKENIZERS_PARALLELISM).
_SECRET = re.compile(r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|PASS|API_?KEY|KEY|CREDENTIALS?|AUTH|PAT)(_|$)", re.IGNORECASE)
# Not secrets although they match: where a secret lives, and switches (HF_HUB_DISABLE_IMPLICIT_TOKEN).
_NOT_SECRET = re.compile(r"_(FILE|PATH|DIR)$|_DISABLE_", re.IGNORECASE)
# huggingface_hub reads the first; the second is its older name.
HUB_TOKEN_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def is_secret_name(name: str) -> bool:
    return bool(_SECRET.search(name)) and not _NOT_SECRET.search(name)


def needs_hub_token(model: str) -> bool:
    """Whether loading `model` may need the Hub: a Hub id rather than a local folder."""
    return not Path(model).expanduser().exists()


def child_env(
    overrides: Mapping[str, str] | None = None,
    *,
    keep: Iterable[str] = (),
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`base` (default: this process's environment) without credential-like variables, except those
    named in `keep`, then `overrides` on top."""
    kept = set(keep)
    env = {k: v for k, v in (os.environ if base is None else base).items() if k in kept or not is_secret_name(k)}
    return env | dict(overrides or {})
