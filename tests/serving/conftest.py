"""A served repo: the push test repo, applied and materialized, plus a feature service."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.serving.http import create_app
from headwater.serving.keys import KeyRing
from tests.streaming.conftest import DRIVER, T0, make_repo, views

KEY = "test-key-0123456789"
SERVICE = hw.FeatureService("driver_model", features=[views()[1]])  # 'globbed': no ttl


def build_repo(folder: Path, settings: str = "", project: str = "serve_test") -> Path:
    """Views as in tests/streaming, materialized up to T0 + 1 h."""
    repo = make_repo(folder, settings, project)
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, *views(), SERVICE])
        store.materialize(T0 - timedelta(days=1), T0 + timedelta(hours=1))
    return repo


@pytest.fixture
def served_repo(tmp_path: Path) -> Path:
    return build_repo(tmp_path / "repo")


@pytest.fixture
def client(served_repo: Path) -> Iterator[TestClient]:
    """An in-process server over the repo with one API key, sent by default."""
    with hw.FeatureStore(served_repo) as store, TestClient(
            create_app(store, api_keys=KeyRing([KEY.encode()])),
            headers={"Authorization": f"Bearer {KEY}"}) as test_client:
        yield test_client
