"""A served repo for the hostile-input tests: the churn repo of tests/inference, trained,
promoted and materialized up to now, with one registry key holding every scope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from headwater.inference.log import PredictionLog
from headwater.serving.http import create_app
from headwater.serving.keys import SCOPES, KeyRing, create_key, registry_loader
from headwater.store import FeatureStore
from tests.inference.conftest import Trained, train_recent


@dataclass(frozen=True)
class Served:
    """The trained churn repo, its store and a key with every scope."""

    trained: Trained
    key: str

    @property
    def store(self) -> FeatureStore:
        return self.trained.store


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    for trained in train_recent(tmp_path_factory.mktemp("hostile") / "repo"):
        trained.store.materialize(trained.start - timedelta(days=1), datetime.now(UTC))
        key, _ = create_key(trained.store, "fuzzer", SCOPES)
        yield Served(trained, key)


def ring(served: Served) -> KeyRing:
    """The keys the server accepts: the registry's (no operator key)."""
    return KeyRing((), registry_loader(served.store))


@pytest.fixture
def client(served: Served, tmp_path: Path) -> Iterator[TestClient]:
    """An in-process server over the served repo, auth on, the all-scopes key sent."""
    log = PredictionLog(tmp_path / "log")
    with TestClient(create_app(served.store, api_keys=ring(served), prediction_log=log),
                    headers={"Authorization": f"Bearer {served.key}"},
                    raise_server_exceptions=False) as test_client:
        yield test_client
