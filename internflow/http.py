"""The one HTTP layer for every external call: arXiv, the Hugging Face Hub, datasets-server,
Semantic Scholar and paper HTML pages.

Each service gets a `requests.Session` whose adapter carries urllib3's `Retry` (backoff on
connection errors, read timeouts, 429 and 5xx, honouring `Retry-After`), a default timeout on
every request, and a minimum interval between requests (a per-service rate limit shared by every
session of that service in the process).  Offline mode is explicit: with `INTERNFLOW_OFFLINE=1`
(or `HF_HUB_OFFLINE=1`) every request raises `OfflineError` naming the switch, so callers report
"offline" instead of returning a silent empty result.  Failures past the retries raise
`ServiceError` with the service, URL and cause.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

__all__ = [
    "OFFLINE_SWITCHES",
    "SERVICES",
    "OfflineError",
    "ServiceError",
    "ServicePolicy",
    "ServiceSession",
    "get",
    "get_json",
    "offline_reason",
    "policy_for",
    "session_for",
]

OFFLINE_SWITCHES = ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE")
RETRY_STATUSES = (429, 500, 502, 503, 504)


class OfflineError(RuntimeError):
    """Offline mode is on: no request was made."""


class ServiceError(RuntimeError):
    """A request that failed for good (after the retries): names the service, the URL and why."""

    def __init__(self, service: str, url: str, cause: str, status: int | None = None) -> None:
        super().__init__(f"{service}: {url}: {cause}")
        self.service, self.url, self.cause, self.status = service, url, cause, status


@dataclass(frozen=True)
class ServicePolicy:
    """How politely and how persistently to talk to one service."""

    name: str
    base_url: str
    min_interval_s: float = 0.0  # at least this long between two requests to the service
    timeout_s: float = 10.0  # connect and read timeout of each try
    retries: int = 3  # tries after the first, on connection errors, read timeouts, 429 and 5xx
    backoff_s: float = 0.5  # urllib3 backoff factor: waits 0.5, 1, 2 ... s (Retry-After wins)
    max_backoff_s: float = 30.0


# Intervals follow each service's published guidance: arXiv asks for 3 s between calls; Semantic
# Scholar's unauthenticated pool allows about one request per second.
SERVICES: dict[str, ServicePolicy] = {
    policy.name: policy
    for policy in (
        ServicePolicy("arxiv", "https://export.arxiv.org", min_interval_s=3.0, retries=0),  # arxiv.Client retries
        ServicePolicy("hf-hub", "https://huggingface.co", min_interval_s=0.1),
        ServicePolicy("datasets-server", "https://datasets-server.huggingface.co", min_interval_s=0.2),
        ServicePolicy("semantic-scholar", "https://api.semanticscholar.org", min_interval_s=1.0),
        ServicePolicy("paper-html", "https://arxiv.org", min_interval_s=1.0),
    )
}


def policy_for(service: str, **overrides: Any) -> ServicePolicy:
    """The registered policy of `service`, with any field overridden (a test's base_url, say)."""
    try:
        policy = SERVICES[service]
    except KeyError:
        raise ValueError(f"service: unknown service {service!r}; known: {', '.join(SERVICES)}") from None
    return replace(policy, **overrides) if overrides else policy


def offline_reason() -> str | None:
    """'offline mode (INTERNFLOW_OFFLINE=1)' when a switch is on, else None."""
    switch = next((name for name in OFFLINE_SWITCHES if os.environ.get(name) == "1"), None)
    return f"offline mode ({switch}=1)" if switch else None


class _RateLimiter:
    """A minimum interval between requests to one service, across threads."""

    _by_service: dict[str, _RateLimiter] = {}
    _registry_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_at = 0.0

    @classmethod
    def of(cls, service: str) -> _RateLimiter:
        with cls._registry_lock:
            return cls._by_service.setdefault(service, cls())

    def wait(self, interval_s: float) -> None:
        with self._lock:
            now = time.monotonic()
            delay = self._next_at - now
            self._next_at = max(now, self._next_at) + interval_s
        if delay > 0:
            time.sleep(delay)


class ServiceSession(requests.Session):
    """A session for one service: timeout by default, retries in the adapter, rate limited,
    refusing to send anything in offline mode."""

    def __init__(self, policy: ServicePolicy) -> None:
        super().__init__()
        self.policy = policy
        retry = Retry(
            total=policy.retries,
            connect=policy.retries,
            read=policy.retries,
            status=policy.retries,
            other=0,
            backoff_factor=policy.backoff_s,
            backoff_max=policy.max_backoff_s,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "HEAD"}),
            respect_retry_after_header=True,
            raise_on_status=False,  # the last response comes back; raise_for_status names it
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.headers["User-Agent"] = "internflow (+https://github.com/internflow)"
        self._limiter = _RateLimiter.of(policy.name)

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        reason = offline_reason()
        if reason:
            raise OfflineError(f"{self.policy.name}: {reason}; no request sent to {url!r}")
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.policy.timeout_s
        self._limiter.wait(self.policy.min_interval_s)
        return super().request(method, url, *args, **kwargs)

    def url(self, path: str) -> str:
        return self.policy.base_url.rstrip("/") + "/" + path.lstrip("/")


def session_for(service: str, **overrides: Any) -> ServiceSession:
    return ServiceSession(policy_for(service, **overrides))


def get_json(session: ServiceSession, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET `path` under the service's base URL and decode JSON; `ServiceError` when that fails."""
    response = get(session, path, params)
    try:
        return response.json()
    except ValueError:
        raise ServiceError(session.policy.name, response.url, "response is not JSON", response.status_code) from None


def get(session: ServiceSession, path: str, params: dict[str, Any] | None = None) -> requests.Response:
    """GET with the session's retries; a final error status or a dead connection → `ServiceError`."""
    url = session.url(path) if not path.startswith(("http://", "https://")) else path
    name = session.policy.name
    try:
        response = session.get(url, params=params)
    except requests.exceptions.RetryError as error:  # statuses retried to the end (raise_on_status=False aside)
        raise ServiceError(name, url, f"gave up after {session.policy.retries + 1} tries: {_cause(error)}") from error
    except requests.RequestException as error:
        tries = session.policy.retries + 1
        raise ServiceError(name, url, f"{type(error).__name__} after {tries} tries: {_cause(error)}") from error
    if response.status_code >= 400:
        retried = f" after {session.policy.retries + 1} tries" if response.status_code in RETRY_STATUSES else ""
        raise ServiceError(name, response.url, f"HTTP {response.status_code}{retried}", response.status_code)
    return response


def _cause(error: Exception) -> str:
    reason = getattr(error.args[0], "reason", None) if error.args else None  # urllib3 wraps the cause
    return str(reason) if reason else str(error)
