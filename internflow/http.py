"""The one HTTP layer for every external call: arXiv, the Hugging Face Hub, datasets-server,
Semantic Scholar and paper HTML pages.

Each service gets a `requests.Session` whose adapter carries urllib3's `Retry` (backoff on
connection errors, read timeouts, 429 and 5xx, honouring `Retry-After` up to the policy's
`max_backoff_s`), a default timeout on every request, and a minimum interval between requests
(a per-service rate limit shared by every session of that service in the process).  Every call
has a deadline: no retry starts once `deadline_s` has passed since its first failure, whatever a
server asks for.  A host that just failed for good is not asked again for `cooldown_s` (a
circuit breaker per service and host, for the process): its calls fail at once with
`CircuitOpenError`, so a campaign whose services all hang pays their timeouts once, not once
per iteration.  Offline mode is explicit: with `INTERNFLOW_OFFLINE=1` (or `HF_HUB_OFFLINE=1`)
every request raises `OfflineError` naming the switch, so callers report "offline" instead of
returning a silent empty result.  Failures past the retries raise `ServiceError` with the
service, URL and cause.  `wait_until_healthy` polls a server we started ourselves (vLLM, Prefect)
until its health check answers.
"""

from __future__ import annotations

import math
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

__all__ = [
    "OFFLINE_SWITCHES",
    "SERVICES",
    "CircuitOpenError",
    "OfflineError",
    "ServerNotReadyError",
    "ServiceError",
    "ServicePolicy",
    "ServiceSession",
    "get",
    "get_json",
    "hf_token",
    "retry_transient",
    "offline_reason",
    "policy_for",
    "record_outcome",
    "session_for",
    "wait_until_healthy",
]

T = TypeVar("T")

OFFLINE_SWITCHES = ("INTERNFLOW_OFFLINE", "HF_HUB_OFFLINE")
RETRY_STATUSES = (429, 500, 502, 503, 504)


class OfflineError(RuntimeError):
    """Offline mode is on: no request was made."""


class ServiceError(RuntimeError):
    """A request that failed for good (after the retries): names the service, the URL and why."""

    def __init__(self, service: str, url: str, cause: str, status: int | None = None) -> None:
        super().__init__(f"{service}: {url}: {cause}")
        self.service, self.url, self.cause, self.status = service, url, cause, status


class CircuitOpenError(ServiceError):
    """Not sent: the service's host failed for good a moment ago (see `ServicePolicy.cooldown_s`)."""


@dataclass(frozen=True)
class ServicePolicy:
    """How politely and how persistently to talk to one service."""

    name: str
    base_url: str
    min_interval_s: float = 0.0  # at least this long between two requests to the service
    timeout_s: float = 10.0  # connect and read timeout of each try
    retries: int = 3  # tries after the first, on connection errors, read timeouts, 429 and 5xx
    backoff_s: float = 0.5  # urllib3 backoff factor: waits 0.5, 1, 2 ... s (Retry-After wins)
    max_backoff_s: float = 30.0  # the longest wait between tries, a server's Retry-After included
    deadline_s: float = 60.0  # no retry starts later than this after a call's first failure
    cooldown_s: float = 600.0  # a host that failed for good is not asked again for this long


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


# Where a service lives can be moved by the environment, read at each call: HF_ENDPOINT (a Hub
# mirror or a private Hub, as huggingface_hub and datasets read it) and INTERNFLOW_DATASETS_SERVER.
ENDPOINT_VARIABLES = {"hf-hub": "HF_ENDPOINT", "datasets-server": "INTERNFLOW_DATASETS_SERVER"}


def policy_for(service: str, **overrides: Any) -> ServicePolicy:
    """The registered policy of `service` (its base URL from the environment where one is set), with
    any field overridden (a test's base_url, say)."""
    try:
        policy = SERVICES[service]
    except KeyError:
        raise ValueError(f"service: unknown service {service!r}; known: {', '.join(SERVICES)}") from None
    moved = os.environ.get(ENDPOINT_VARIABLES.get(service, ""), "").rstrip("/")
    if moved and "base_url" not in overrides:
        overrides["base_url"] = moved
    return replace(policy, **overrides) if overrides else policy


def hf_token() -> str | None:
    """The Hugging Face token huggingface_hub would send (HF_TOKEN, else the login cache), or None."""
    from huggingface_hub import get_token

    return get_token()


def offline_reason(service: str | None = None) -> str | None:
    """'offline mode (INTERNFLOW_OFFLINE=1)' when a switch is on, else None.  With a service name,
    also when INTERNFLOW_OFFLINE_SERVICES (comma-separated names) lists it: a cluster with a Hub
    mirror (HF_ENDPOINT) but no way out to arXiv says `INTERNFLOW_OFFLINE_SERVICES=arxiv,...`."""
    switch = next((name for name in OFFLINE_SWITCHES if os.environ.get(name) == "1"), None)
    if switch:
        return f"offline mode ({switch}=1)"
    listed = {name.strip() for name in os.environ.get("INTERNFLOW_OFFLINE_SERVICES", "").split(",")}
    return f"offline mode for {service} (INTERNFLOW_OFFLINE_SERVICES)" if service and service in listed else None


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


class _Breaker:
    """A circuit breaker for one service's host: open for `cooldown_s` after a call failed for good."""

    _by_host: dict[tuple[str, str], _Breaker] = {}
    _registry_lock = threading.Lock()

    def __init__(self) -> None:
        self.open_until = 0.0
        self.failed_at = 0.0
        self.cause = ""

    @classmethod
    def of(cls, service: str, url: str) -> _Breaker:
        with cls._registry_lock:
            return cls._by_host.setdefault((service, urlsplit(url).netloc), cls())

    def check(self, service: str, url: str) -> None:
        now = time.monotonic()
        if now < self.open_until:
            raise CircuitOpenError(
                service,
                url,
                f"not asked: it failed {now - self.failed_at:.0f} s ago ({self.cause}); "
                f"asked again in {self.open_until - now:.0f} s",
            )


def record_outcome(service: str, url: str, cause: str | None, cooldown_s: float) -> None:
    """After a call: `cause` None closes the host's breaker; a cause opens it for `cooldown_s`."""
    breaker = _Breaker.of(service, url)
    if cause is None:
        breaker.open_until = 0.0
        return
    breaker.failed_at = time.monotonic()
    breaker.open_until, breaker.cause = breaker.failed_at + cooldown_s, cause[:200]


class _DeadlineRetry(Retry):
    """urllib3's Retry that starts no try once `deadline_s` has passed since the call's first
    failure (counting the wait before the next try): a server's Retry-After, however long, and
    the backoff cannot hold a call longer than the deadline plus one try's timeout."""

    def __init__(self, *args: Any, deadline_s: float = math.inf, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline_s = deadline_s
        self.first_failure: float | None = None

    def new(self, **kw: Any) -> Self:
        retry = super().new(**kw)
        retry.deadline_s, retry.first_failure = self.deadline_s, self.first_failure
        return retry

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        now = time.monotonic()
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        retry.first_failure = self.first_failure if self.first_failure is not None else now
        wait = (retry.get_retry_after(response) if response is not None else None) or retry.get_backoff_time()
        if now + wait - retry.first_failure > self.deadline_s:
            spent = now - retry.first_failure
            reason = ResponseError(f"deadline: no retry {spent:.1f} s after the first failure ({self.deadline_s:g} s)")
            raise MaxRetryError(_pool, url or "", reason) from reason  # type: ignore[arg-type]
        return retry


class ServiceSession(requests.Session):
    """A session for one service: timeout by default, retries in the adapter, rate limited,
    refusing to send anything in offline mode."""

    def __init__(self, policy: ServicePolicy) -> None:
        super().__init__()
        self.policy = policy
        retry = _DeadlineRetry(
            deadline_s=policy.deadline_s,
            total=policy.retries,
            connect=policy.retries,
            read=policy.retries,
            status=policy.retries,
            other=0,
            backoff_factor=policy.backoff_s,
            backoff_max=policy.max_backoff_s,
            retry_after_max=max(0, math.ceil(policy.max_backoff_s)),  # a server asking for 45 s gets 30
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "HEAD"}),
            respect_retry_after_header=True,
            raise_on_status=False,  # the last response comes back; raise_for_status names it
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.headers["User-Agent"] = "internflow (+https://github.com/internflow)"
        if policy.name in ENDPOINT_VARIABLES and (token := hf_token()):
            self.headers["Authorization"] = f"Bearer {token}"  # gated and private datasets
        self._limiter = _RateLimiter.of(policy.name)

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        reason = offline_reason(self.policy.name)
        if reason:
            raise OfflineError(f"{self.policy.name}: {reason}; no request sent to {url!r}")
        _Breaker.of(self.policy.name, str(url)).check(self.policy.name, str(url))
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
    name, policy = session.policy.name, session.policy
    try:
        response = session.get(url, params=params)
    except requests.exceptions.RetryError as error:  # statuses retried to the end (raise_on_status=False aside)
        failure = ServiceError(name, url, f"gave up{_after(policy, error)}: {_cause(error)}")
        record_outcome(name, url, failure.cause, policy.cooldown_s)
        raise failure from error
    except requests.RequestException as error:
        failure = ServiceError(name, url, f"{type(error).__name__}{_after(policy, error)}: {_cause(error)}")
        record_outcome(name, url, failure.cause, policy.cooldown_s)
        raise failure from error
    if response.status_code in RETRY_STATUSES:  # still failing after the retries: the host is unwell
        tries = len(getattr(getattr(response.raw, "retries", None), "history", ())) + 1
        cause = f"HTTP {response.status_code} after {tries} tries"
        record_outcome(name, url, cause, policy.cooldown_s)
        raise ServiceError(name, response.url, cause, response.status_code)
    record_outcome(name, url, None, policy.cooldown_s)  # it answered (a 404 is an answer too)
    if response.status_code >= 400:
        raise ServiceError(name, response.url, f"HTTP {response.status_code}", response.status_code)
    return response


def _after(policy: ServicePolicy, error: Exception) -> str:
    """' after N tries', unless the deadline stopped the retries first (the cause then says so)."""
    return "" if _cause(error).startswith("deadline:") else f" after {policy.retries + 1} tries"


def _cause(error: Exception) -> str:
    reason = getattr(error.args[0], "reason", None) if error.args else None  # urllib3 wraps the cause
    return str(reason) if reason else str(error)


_TRANSIENT_NAMES = ("ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "RemoteProtocolError")


def is_transient(error: BaseException) -> bool:
    """An error worth retrying: HTTP 429/5xx or a dropped/timed-out connection, anywhere in the
    chain of causes (libraries such as datasets wrap huggingface_hub's errors in their own)."""
    seen: BaseException | None = error
    while seen is not None:
        response = getattr(seen, "response", None)
        if getattr(response, "status_code", None) in RETRY_STATUSES:
            return True
        if isinstance(seen, requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError):
            return True
        if type(seen).__name__ in _TRANSIENT_NAMES:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_transient(call: Callable[[], T], service: str, what: str) -> T:
    """Run `call` (a library call with no retries of its own on some requests, such as
    `datasets.load_dataset`'s repository lookups), retrying transient failures with the service's
    policy: as many tries and the same capped exponential backoff as its session would use."""
    policy = policy_for(service)
    for attempt in range(policy.retries + 1):
        reason = offline_reason(service)
        if reason:
            raise OfflineError(f"{service}: {reason}; {what} not attempted")
        try:
            return call()
        except Exception as error:
            if attempt == policy.retries or not is_transient(error):
                raise
            time.sleep(min(policy.max_backoff_s, policy.backoff_s * 2**attempt))
    raise AssertionError("unreachable: the loop returns or raises")


class ServerNotReadyError(RuntimeError):
    """A server's health check never answered 200: its process exited (`exit_code` set), or the
    deadline passed (`exit_code` None)."""

    def __init__(self, url: str, waited_s: float, exit_code: int | None) -> None:
        why = f"the server exited with code {exit_code}" if exit_code is not None else "no answer 200"
        super().__init__(f"{url}: {why} after {waited_s:.1f} s")
        self.url, self.waited_s, self.exit_code = url, waited_s, exit_code

    @property
    def exited(self) -> bool:
        return self.exit_code is not None


def wait_until_healthy(
    url: str,
    process: subprocess.Popen[Any] | None,
    timeout_s: float,
    *,
    started: float | None = None,
    interval_s: float = 0.5,
    request_timeout_s: float = 2.0,
) -> float:
    """Poll GET `url` (a health endpoint, e.g. http://127.0.0.1:8000/health) until it answers 200;
    returns the seconds waited.

    `timeout_s`: seconds allowed, counted from `started` (a `time.monotonic()` reading: when the
    server was launched; default now).  `process`: the server's process; its exit ends the wait at
    once.  `interval_s`: seconds between polls; `request_timeout_s`: each GET's timeout.  A refused
    connection, a timed-out GET or another status is "not yet".  Raises `ServerNotReadyError`
    (`exited` when the process exited, else the deadline passed).  A local server we started is no
    external service: no offline mode, breaker or retry policy applies.
    """
    started = time.monotonic() if started is None else started
    deadline = started + timeout_s
    while True:
        if process is not None and (code := process.poll()) is not None:
            raise ServerNotReadyError(url, time.monotonic() - started, code)
        try:
            if requests.get(url, timeout=request_timeout_s).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        if time.monotonic() >= deadline:
            raise ServerNotReadyError(url, time.monotonic() - started, None)
        time.sleep(interval_s)
