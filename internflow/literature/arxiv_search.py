"""arXiv search through the `arxiv` client, its requests sent by `internflow.http`.

Searching is a nicety, not a requirement: `search_arxiv` never raises.  Results are kept in
an on-disk cache (one JSON file per normalized query), so a repeated query costs no request.  When
arXiv can't be reached, or INTERNFLOW_OFFLINE=1 says not to try, the report says "offline" and why,
with any papers an earlier search of the same query left in the cache; never a silent empty list.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import arxiv
import requests
from urllib3.exceptions import NameResolutionError

from internflow.http import OfflineError, ServiceError, ServiceSession, offline_reason, policy_for, record_outcome
from internflow.schemas import LiteratureReport, LiteratureRequest, Paper

__all__ = ["DEFAULT_TIMEOUT_S", "arxiv_client", "search_arxiv", "write_atomically"]

DEFAULT_TIMEOUT_S = 10.0


class _HostNotFound(requests.RequestException):
    """Not a ConnectionError, which arxiv would retry: a failed DNS lookup is not worth the waits."""


class _ArxivSession(ServiceSession):
    """arxiv 4.0.2 calls `session.get(url)` with no timeout, and retries only ConnectionError: the
    shared layer adds the timeout and the rate limit (the client's own retries stay: its policy
    has retries=0), and a read timeout is raised as a ConnectionError, to be retried too."""

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["timeout"] = kwargs.get("timeout") or self.policy.timeout_s
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.Timeout as error:
            raise requests.ConnectionError(f"no response within {kwargs['timeout']}s") from error
        except requests.ConnectionError as error:
            reason = getattr(error.args[0], "reason", None) if error.args else None
            if isinstance(reason, NameResolutionError):
                raise _HostNotFound(str(reason)) from error
            raise


def arxiv_client(
    page_size: int = 100,
    delay_seconds: float = 3.0,
    num_retries: int = 3,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> arxiv.Client:
    """An arxiv.Client whose requests time out and are then retried; 3 s apart, as arXiv's terms ask
    (the spacing is the shared layer's per-service rate limit, so the client's own delay is 0)."""
    client = arxiv.Client(page_size=page_size, delay_seconds=0, num_retries=num_retries)
    policy = policy_for("arxiv", min_interval_s=delay_seconds, timeout_s=timeout_s)
    client._session = _ArxivSession(policy)  # arxiv 4.0.2 has no public session or timeout setting
    return client


def search_arxiv(request: LiteratureRequest, client: arxiv.Client | None = None) -> LiteratureReport:
    """Papers for `request.query`: from the cache if there, else from arXiv; "offline" if neither."""
    cache_file = _cache_file(request)
    cached = _read_report(cache_file)
    if cached is not None:
        return cached.model_copy(update={"status": "cached", "note": f"from the cache: {cache_file.name}"})
    reason = offline_reason("arxiv")
    if reason:
        return _offline(request, reason)
    by_relevance = arxiv.SortCriterion.Relevance
    search = arxiv.Search(request.query, max_results=request.max_results, sort_by=by_relevance)
    client = client or arxiv_client(page_size=request.max_results)
    # The client retries on its own: its host's breaker (internflow.http) is told only the final outcome.
    url, session = client.query_url_format, getattr(client, "_session", None)
    cooldown_s = session.policy.cooldown_s if isinstance(session, ServiceSession) else policy_for("arxiv").cooldown_s
    try:
        results = list(client.results(search))
        papers = tuple(_paper(result) for result in results)
    except OfflineError as error:
        return _offline(request, str(error))
    except ServiceError as error:  # not sent: arXiv failed a moment ago
        return _offline(request, f"arXiv unreachable: {error.cause}")
    except (arxiv.ArxivError, requests.RequestException) as error:
        record_outcome("arxiv", url, _describe(error), cooldown_s)
        return _offline(request, f"arXiv unreachable: {_describe(error)}")
    except ValueError as error:  # a malformed entry: arXiv answered
        return _offline(request, f"arXiv unreachable: {_describe(error)}")
    record_outcome("arxiv", url, None, cooldown_s)
    if not papers:  # not cached: an empty page can be a passing arXiv hiccup
        return LiteratureReport(query=request.query, status="online", note="arXiv found no papers for it")
    report = LiteratureReport(query=request.query, status="online", papers=papers)
    write_atomically(cache_file, report.model_dump_json(indent=2))
    return report


def _paper(result: arxiv.Result) -> Paper:
    return Paper(
        arxiv_id=result.get_short_id(),
        title=result.title,
        summary=" ".join(result.summary.split()),  # the API wraps abstracts at ~80 columns
        url=result.entry_id,
        published=result.published.date().isoformat(),
    )


def _describe(error: Exception) -> str:
    if isinstance(error, arxiv.ArxivError):
        return f"{error} after {error.retry + 1} tries"
    reason = getattr(error.args[0], "reason", None) if error.args else None  # urllib3 wraps the cause
    return f"{type(error).__name__.lstrip('_')}: {reason or error}"


def _offline(request: LiteratureRequest, reason: str) -> LiteratureReport:
    papers = _papers_from_other_searches(request)
    found = f"{len(papers)} papers from an earlier search of this query" if papers else "no cached papers"
    return LiteratureReport(query=request.query, status="offline", papers=papers, note=f"{reason}; {found}")


def _normalized(query: str) -> str:
    return " ".join(query.lower().split())


def _cache_file(request: LiteratureRequest) -> Path:
    key = hashlib.sha256(f"{_normalized(request.query)}\n{request.max_results}".encode()).hexdigest()
    return request.cache_dir / f"arxiv-{key[:24]}.json"


def _read_report(path: Path) -> LiteratureReport | None:
    try:
        return LiteratureReport.model_validate_json(path.read_bytes())
    except (OSError, ValueError):  # missing, or written by an older schema: a miss, not an error
        return None


def _papers_from_other_searches(request: LiteratureRequest) -> tuple[Paper, ...]:
    """The same query cached with another max_results: better than nothing while offline."""
    reports = (_read_report(path) for path in sorted(request.cache_dir.glob("arxiv-*.json")))
    same = [r for r in reports if r is not None and _normalized(r.query) == _normalized(request.query)]
    return max((r.papers for r in same), key=len, default=())[: request.max_results]


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)  # readers see the old file or the new one, never half of one
