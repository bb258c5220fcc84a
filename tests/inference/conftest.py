"""A churn repo whose days end today, so its online values are fresh (its view's ttl is 3
days) when served now, with the ``churn`` model trained and promoted to production."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.models.base import TrainingRun
from headwater.testing.models import (
    DEFINITIONS_FILE,
    FEATURES_FILE,
    LABELS_FILE,
    applied_store,
    churn_data,
    churn_repo,
    split_start,
)

CUSTOMERS = 120
DAYS = 40


def recent_churn_repo(path: Path, *, customers: int = CUSTOMERS, days: int = DAYS,
                      regression: bool = False) -> tuple[Path, datetime]:
    """The churn repo with its data moved so that its last day is today (UTC); returns the
    repo and its first day."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days - 1)
    repo = churn_repo(path, customers=customers, days=days, regression=regression)
    features, labels = churn_data(customers, days, start=start)
    pq.write_table(features, repo / FEATURES_FILE)
    pq.write_table(labels, repo / LABELS_FILE)
    definitions = repo / DEFINITIONS_FILE
    definitions.write_text(definitions.read_text().replace(
        split_start(days).date().isoformat(), split_start(days, start).date().isoformat()))
    return repo, start


@dataclass(frozen=True)
class Trained:
    repo: Path
    store: hw.FeatureStore
    start: datetime
    run: TrainingRun


def train_recent(path: Path) -> Iterator[Trained]:
    """The recent churn repo (with the ``spend`` regressor) applied, ``churn`` and ``spend``
    trained and promoted to production; nothing materialized yet."""
    repo, start = recent_churn_repo(path, regression=True)
    store = applied_store(repo)
    try:
        run = store.train("churn")
        store.promote("churn", run.version)
        spend = store.train("spend")
        store.promote("spend", spend.version)
        yield Trained(repo, store, start, run)
    finally:
        store.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """:func:`train_recent`, shared by a module's tests (training takes seconds): tests
    may materialize and predict, but not train or promote."""
    yield from train_recent(tmp_path_factory.mktemp("trained") / "repo")


@pytest.fixture
def own_trained(tmp_path: Path) -> Iterator[Trained]:
    """:func:`train_recent` for one test, which may train and promote."""
    yield from train_recent(tmp_path / "repo")
