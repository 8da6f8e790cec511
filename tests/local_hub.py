"""A local Hugging Face Hub on 127.0.0.1 for tests: dataset repos with real parquet files, served at
the Hub's own URLs, plus the datasets-server API computed from those files.

`HF_ENDPOINT` (and `INTERNFLOW_DATASETS_SERVER`) point at it, so `huggingface_hub.HfApi`,
`datasets.load_dataset` and internflow's discovery run their real code against it.  What it
answers (the subset of the Hub those clients use):

- `GET /api/datasets?search=&limit=&sort=`: search by substring of the id, most downloads first
- `GET /api/datasets/{repo}[/revision/{rev}]`: the repo's info (sha, siblings, gated, card data)
- `GET /api/datasets/{repo}/tree/{rev}[/{path}]`, `POST /api/datasets/{repo}/paths-info/{rev}`
- `HEAD|GET /datasets/{repo}/resolve/{rev}/{path}`: the file, with ETag and X-Repo-Commit
- datasets-server: `/is-valid`, `/splits`, `/info`, `/size`, `/first-rows`

A gated repo answers 401 to everything but search (as the Hub does without a token).  Every
commit stays resolvable by its sha, so a pinned revision still reads the old files after a push.
Faults are injected per route kind (`inject`, or `fail_once_per_endpoint`), and every request is
recorded.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.replay_server import Fault, RecordedRequest

__all__ = ["HubRepo", "LocalHub", "parquet_bytes"]


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Rows → the bytes of one parquet file (what the Hub stores for most datasets)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


@dataclass
class HubRepo:
    """One dataset repository: configs → splits → rows; each `push` is a new commit."""

    repo_id: str
    configs: dict[str, dict[str, list[dict[str, Any]]]]
    downloads: int = 100
    license: str | None = "mit"
    gated: bool = False
    description: str = ""
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha → path → bytes
    head: str = ""

    def __post_init__(self) -> None:
        self.push(self.configs)

    def push(self, configs: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
        """A new commit with these configs; returns its sha (older commits stay readable)."""
        self.configs = configs
        files: dict[str, bytes] = {}
        card_configs = []
        for config, splits in configs.items():
            data_files = []
            for split, rows in splits.items():
                path = f"{config}/{split}-00000-of-00001.parquet"
                files[path] = parquet_bytes(rows)
                data_files.append({"split": split, "path": f"{config}/{split}-*"})
            card_configs.append({"config_name": config, "data_files": data_files})
        import yaml

        front = {"configs": card_configs, **({"license": self.license} if self.license else {})}
        files["README.md"] = f"---\n{yaml.safe_dump(front)}---\n\n# {self.repo_id}\n\n{self.description}\n".encode()
        digest = hashlib.sha1()
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha1(files[path]).digest())
        sha = digest.hexdigest()
        self.commits[sha] = files
        self.head = sha
        return sha

    def files_at(self, revision: str) -> dict[str, bytes] | None:
        return self.commits.get(self.head if revision == "main" else revision)

    def info(self, revision: str = "main") -> dict[str, Any]:
        files = self.files_at(revision) or {}
        return {
            "_id": hashlib.sha1(self.repo_id.encode()).hexdigest()[:24],
            "id": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "sha": self.head if revision == "main" else revision,
            "private": False,
            "gated": "manual" if self.gated else False,
            "disabled": False,
            "downloads": self.downloads,
            "likes": 0,
            "tags": [f"license:{self.license}"] if self.license else [],
            "cardData": {"license": self.license} if self.license else {},
            "description": self.description,
            "lastModified": "2026-11-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "siblings": [{"rfilename": path} for path in sorted(files)],
        }


class LocalHub:
    """Serves `repos` (see module docstring); use as a context manager."""

    def __init__(self, repos: list[HubRepo] | None = None) -> None:
        self.repos: dict[str, HubRepo] = {r.repo_id: r for r in repos or []}
        self.requests: list[RecordedRequest] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._fail_once: tuple[int, ...] = ()
        self._failed_kinds: set[str] = set()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        serve = lambda: self._httpd.serve_forever(poll_interval=0.02)  # noqa: E731
        self._thread = threading.Thread(target=serve, name="local-hub", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add(self, repo: HubRepo) -> None:
        self.repos[repo.repo_id] = repo

    def inject(self, kind: str, faults: list[Fault]) -> None:
        """The next requests of this route kind (e.g. 'search', 'resolve', 'first-rows') meet these faults."""
        with self._lock:
            self._faults.setdefault(kind, deque()).extend(faults)

    def fail_once_per_endpoint(self, statuses: tuple[int, ...] = (429, 503)) -> None:
        """The first request of every route kind gets one of `statuses` (in turn), once."""
        self._fail_once = statuses

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._fail_once, self._failed_kinds = (), set()

    def requests_of(self, kind: str) -> list[RecordedRequest]:
        return [r for r in self.requests if _kind(r.method, r.path) == kind]

    def env(self) -> dict[str, str]:
        """What points huggingface_hub, datasets and internflow at this hub."""
        return {"HF_ENDPOINT": self.url, "INTERNFLOW_DATASETS_SERVER": self.url}

    def __enter__(self) -> LocalHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _fault(self, kind: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(kind)
            if queue:
                return queue.popleft()
            if self._fail_once and kind not in self._failed_kinds:
                self._failed_kinds.add(kind)
                return self._fail_once[len(self._failed_kinds) % len(self._fail_once)]
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = unquote(url.path)
                query = parse_qs(url.query, keep_blank_values=True)
                if self.command == "POST":
                    query |= parse_qs(body.decode(errors="replace"), keep_blank_values=True)
                headers = {name.lower(): value for name, value in self.headers.items()}
                hub.requests.append(RecordedRequest(self.command, path, query, headers, body))
                kind = _kind(self.command, path)
                fault = hub._fault(kind)
                if fault in ("timeout", "disconnect"):
                    self.close_connection = True
                    return
                if isinstance(fault, int):
                    self._send(fault, f"injected {fault}".encode(), {"Retry-After": "0"})
                    return
                status, payload, extra = hub._route(kind, path, query)
                self._send(status, payload, extra)

            def _send(self, status: int, payload: bytes | Any, headers: dict[str, str] | None = None) -> None:
                if not isinstance(payload, bytes):
                    payload = json.dumps(payload).encode()
                    headers = {"Content-Type": "application/json", **(headers or {})}
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_HEAD = do_POST = _answer  # noqa: N815 (http.server's names)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
                pass

        return Handler

    def _route(self, kind: str, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        one = lambda name: (query.get(name) or [""])[0]  # noqa: E731
        if kind == "search":
            words = one("search").lower()
            found = sorted((r for r in self.repos.values() if words in r.repo_id.lower()), key=lambda r: -r.downloads)
            limit = int(one("limit") or 1000)
            return 200, [_search_entry(r) for r in found[:limit]], {}
        if kind in ("repo-info", "tree", "paths-info", "resolve"):
            parts = path.strip("/").split("/")
            start = 2 if kind != "resolve" else 1
            repo = self.repos.get("/".join(parts[start : start + 2]))
            if repo is None:
                return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            if repo.gated:
                message = f"Access to dataset {repo.repo_id} is restricted. You must have access to it."
                return 401, {"error": message}, {"X-Error-Code": "GatedRepo", "X-Error-Message": message}
            rest = parts[start + 2 :]
            return self._repo_route(kind, repo, rest, query)
        return self._viewer_route(kind, one)

    def _repo_route(
        self, kind: str, repo: HubRepo, rest: list[str], query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        if kind == "repo-info":
            revision = rest[1] if len(rest) >= 2 and rest[0] == "revision" else "main"
            if repo.files_at(revision) is None:
                return 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
            return 200, repo.info(revision), {}
        revision, sub = rest[1], "/".join(rest[2:])  # [tree|paths-info|resolve, revision, path...]
        files = repo.files_at(revision)
        if files is None:
            return 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
        sha = repo.head if revision == "main" else revision
        if kind == "resolve":
            if sub not in files:
                return 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
            etag = hashlib.sha256(files[sub]).hexdigest()
            headers = {"ETag": f'"{etag}"', "X-Repo-Commit": sha, "Content-Type": "application/octet-stream"}
            return 200, files[sub], headers
        if kind == "paths-info":
            wanted = query.get("paths", [])
            return 200, [e for e in _entries(files, "", recursive=True) if e["path"] in wanted], {}
        recursive = (query.get("recursive") or ["false"])[0] == "true"
        return 200, _entries(files, sub, recursive), {}

    def _viewer_route(self, kind: str, one: Any) -> tuple[int, Any, dict[str, str]]:
        repo = self.repos.get(one("dataset"))
        if kind == "unknown":
            return 404, {"error": "no such route"}, {}
        if repo is None:
            return 404, {"error": "The dataset does not exist."}, {}
        if repo.gated:
            return 401, {"error": "The dataset does not exist, or is not accessible without authentication."}, {}
        if kind == "is-valid":
            return 200, {"preview": True, "viewer": True, "search": False, "filter": False, "statistics": False}, {}
        splits = [
            {"dataset": repo.repo_id, "config": config, "split": split}
            for config, by_split in repo.configs.items()
            for split in by_split
        ]
        if kind == "splits":
            return 200, {"splits": splits, "pending": [], "failed": []}, {}
        if kind == "size":
            sizes = [
                {"dataset": s["dataset"], "config": s["config"], "split": s["split"],
                 "num_rows": len(repo.configs[s["config"]][s["split"]])}
                for s in splits
            ]  # fmt: skip
            return 200, {"size": {"dataset": {"num_rows": sum(s["num_rows"] for s in sizes)}, "splits": sizes}}, {}
        config = one("config") or next(iter(repo.configs))
        if config not in repo.configs:
            return 404, {"error": "Not found."}, {}
        if kind == "info":  # datasets-server /info (the Hub's own /api/... info is routed above)
            by_split = repo.configs[config]
            return 200, {"dataset_info": _dataset_info(repo, config, by_split), "partial": False}, {}
        rows = repo.configs[config].get(one("split"))
        if rows is None:
            return 404, {"error": "Not found."}, {}
        features = [{"feature_idx": i, "name": name, "type": _feature(rows[0][name])} for i, name in enumerate(rows[0])]
        first = [{"row_idx": i, "row": row, "truncated_cells": []} for i, row in enumerate(rows[:100])]
        page = {"dataset": repo.repo_id, "config": config, "split": one("split"), "features": features, "rows": first}
        return 200, page, {}


def _kind(method: str, path: str) -> str:
    """The route kind of a request (search, repo-info, tree, paths-info, resolve, or a datasets-server
    endpoint's name): what fault injection and request counts are keyed by."""
    if path == "/api/datasets":
        return "search"
    if path.startswith("/api/datasets/"):
        if "/tree/" in path:
            return "tree"
        return "paths-info" if "/paths-info/" in path else "repo-info"
    if path.startswith("/datasets/") and "/resolve/" in path:
        return "resolve"
    viewer = path.strip("/")
    return viewer if viewer in ("is-valid", "splits", "size", "first-rows", "info") else "unknown"


def _search_entry(repo: HubRepo) -> dict[str, Any]:
    info = repo.info()
    return {key: info[key] for key in ("_id", "id", "author", "sha", "private", "gated", "disabled", "downloads",
                                       "likes", "tags", "lastModified", "createdAt", "description")}  # fmt: skip


def _entries(files: dict[str, bytes], under: str, recursive: bool) -> list[dict[str, Any]]:
    prefix = f"{under.strip('/')}/" if under.strip("/") else ""
    entries: dict[str, dict[str, Any]] = {}
    for path, data in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        for depth in range(1, len(parts)):
            folder = prefix + "/".join(parts[:depth])
            if recursive or depth == 1:
                entries.setdefault(folder, {"type": "directory", "oid": "0" * 40, "size": 0, "path": folder})
            if not recursive:
                break
        if recursive or len(parts) == 1:
            oid = hashlib.sha1(data).hexdigest()
            entries[path] = {"type": "file", "oid": oid, "size": len(data), "path": path}
    return list(entries.values())


def _feature(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"dtype": "bool", "_type": "Value"}
    if isinstance(value, int):
        return {"dtype": "int64", "_type": "Value"}
    if isinstance(value, float):
        return {"dtype": "float64", "_type": "Value"}
    if isinstance(value, list):
        return {"feature": _feature(value[0]) if value else {"dtype": "string", "_type": "Value"}, "_type": "List"}
    if isinstance(value, dict):
        return {name: _feature(inner) for name, inner in value.items()}
    return {"dtype": "string", "_type": "Value"}


def _dataset_info(repo: HubRepo, config: str, by_split: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    first = next(iter(by_split.values()))
    return {
        "description": repo.description,
        "license": repo.license or "",
        "config_name": config,
        "features": {name: _feature(value) for name, value in first[0].items()},
        "splits": {split: {"name": split, "num_examples": len(rows)} for split, rows in by_split.items()},
    }
