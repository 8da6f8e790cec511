"""Shared fixtures: one Prefect test API for the session, one tiny random model, and a local
Hugging Face Hub that every Hub client in the test process (and its children) talks to."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local_hub import LocalHub

_HUB: LocalHub | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module imports huggingface_hub or datasets (they read HF_ENDPOINT once, at
    import): point them, and internflow, at a Hub on 127.0.0.1.  No test can reach the real Hub."""
    global _HUB
    _HUB = LocalHub().__enter__()
    os.environ.update(_HUB.env())
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="internflow-test-hf-home-")  # no cached token or data
    for secret in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        os.environ.pop(secret, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _HUB is not None:
        _HUB.__exit__(None, None, None)


@pytest.fixture
def local_hub() -> Iterator[LocalHub]:
    """The session's local Hub, emptied of repos, requests and faults for this test."""
    assert _HUB is not None
    _HUB.repos.clear()
    _HUB.requests.clear()
    _HUB.reset_faults()
    yield _HUB
    _HUB.repos.clear()
    _HUB.reset_faults()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A real (temporary, SQLite-backed) Prefect API for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
