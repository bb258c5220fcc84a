"""Model versions, aliases and their history in the registry database (SQLite and
PostgreSQL): numbering, round trips, all-or-nothing alias moves, concurrent registration."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from headwater.errors import NotFoundError, RegistryError
from headwater.models.base import ArtifactRef, ModelVersion
from headwater.registry.postgres import PostgresRegistry
from headwater.registry.sql import SQLRegistryBackend
from headwater.registry.sqlite import SQLiteRegistry

from .conftest import backend_target, open_target, run_workers

WHEN = datetime(2024, 11, 1, 12, 30, tzinfo=UTC)


def make_version(model: str = "churn", run_id: str = "run1", **changes: Any) -> ModelVersion:
    fields: dict[str, Any] = {
        "model": model, "version": 0, "run_id": run_id, "task": "classification",
        "estimator_class": "sklearn.linear_model.LogisticRegression",
        "features": ("conv_rate", "trips"), "params": {"C": 1.0, "penalty": "l2"},
        "metrics": {"roc_auc": 0.75, "log_loss": 0.5},
        "lineage": {"feature_service": "svc", "feature_service_version": 2,
                    "feature_views": {"driver_stats": 1}, "code_revision": None},
        "artifact": ArtifactRef(f"{model}/{run_id}/model.skops", "ab" * 32, 120, "skops"),
        "reference": ArtifactRef(f"{model}/{run_id}/reference.json", "cd" * 32, 40, "json"),
        "created_at": WHEN, "classes": (0, 1), "input_kind": "matrix",
        "feature_types": {"conv_rate": "double", "trips": "int64"},
    }
    fields.update(changes)
    return ModelVersion(**fields)


def tables(backend: Any) -> SQLRegistryBackend:
    assert isinstance(backend, SQLRegistryBackend)
    return backend


def test_versions_are_numbered_per_model_and_read_back_whole(backend: Any) -> None:
    db = tables(backend)
    first = db.add_model_version("proj", make_version(version=99))
    second = db.add_model_version("proj", make_version(run_id="run2",
                                                       metrics={"roc_auc": math.nan}))
    other = db.add_model_version("proj", make_version("fraud", reference=None, classes=()))
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert db.add_model_version("other_project", make_version()).version == 1

    assert db.model_version("proj", "churn", 1) == first
    read = db.model_versions("proj", "churn")
    assert [v.version for v in read] == [1, 2]
    assert read[0] == make_version(version=1)
    assert math.isnan(read[1].metrics["roc_auc"])  # NaN survives JSONB
    assert read[0].created_at == WHEN
    assert db.model_version("proj", "fraud", 1) == other
    assert db.model_version("proj", "churn", 3) is None
    assert db.model_names("proj") == ["churn", "fraud"]
    assert db.model_names("nothing") == []


def test_alias_moves_update_the_alias_and_append_history(backend: Any) -> None:
    db = tables(backend)
    for run in ("a", "b", "c"):
        db.add_model_version("proj", make_version(run_id=run))
    checks = [{"metric": "roc_auc", "candidate": 0.8, "current": None, "threshold": None,
               "passed": True}]
    seen: list[int | None] = []

    def guard(current: int | None) -> list[dict[str, Any]]:
        seen.append(current)
        return checks

    set_event = db.move_alias("proj", "churn", "production", 1, reason="promote", guard=guard)
    moved = db.move_alias("proj", "churn", "production", 3, reason="promote", guard=guard)
    db.move_alias("proj", "churn", "staging", 2, reason="promote")
    assert seen == [None, 1]
    assert (set_event.from_version, set_event.to_version) == (None, 1)
    assert (moved.from_version, moved.to_version, moved.checks) == (1, 3, tuple(checks))
    assert db.aliases("proj", "churn") == {"production": 3, "staging": 2}
    assert db.model_version("proj", "churn", 3).aliases == ("production",)  # type: ignore[union-attr]
    assert [v.aliases for v in db.model_versions("proj", "churn")] == [
        (), ("staging",), ("production",)]

    removed = db.move_alias("proj", "churn", "staging", None, reason="unset")
    assert (removed.from_version, removed.to_version) == (2, None)
    assert db.aliases("proj", "churn") == {"production": 3}

    history = db.alias_events("proj", "churn")
    assert [(e.alias, e.from_version, e.to_version, e.reason) for e in history] == [
        ("production", None, 1, "promote"), ("production", 1, 3, "promote"),
        ("staging", None, 2, "promote"), ("staging", 2, None, "unset")]
    assert history[1].checks == tuple(checks)
    assert [e.id for e in history] == sorted(e.id for e in history)
    assert db.alias_events("proj") == history
    assert db.alias_events("proj", "fraud") == []


def test_a_guard_that_raises_writes_nothing(backend: Any) -> None:
    db = tables(backend)
    db.add_model_version("proj", make_version(run_id="a"))
    db.add_model_version("proj", make_version(run_id="b"))
    db.move_alias("proj", "churn", "production", 1, reason="promote")

    def refuse(current: int | None) -> list[dict[str, Any]]:
        raise RegistryError(f"rule failed against {current}")

    with pytest.raises(RegistryError, match="rule failed against 1"):
        db.move_alias("proj", "churn", "production", 2, reason="promote", guard=refuse)
    with pytest.raises(RegistryError):
        db.move_alias("proj", "churn", "staging", 2, reason="promote", guard=refuse)
    assert db.aliases("proj", "churn") == {"production": 1}
    assert len(db.alias_events("proj", "churn")) == 1


def test_moving_to_a_missing_version_or_removing_an_unset_alias_is_not_found(
        backend: Any) -> None:
    db = tables(backend)
    db.add_model_version("proj", make_version())
    with pytest.raises(NotFoundError, match="no version 7"):
        db.move_alias("proj", "churn", "production", 7, reason="promote")
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        db.move_alias("proj", "churn", "staging", None, reason="unset")
    assert db.aliases("proj", "churn") == {}
    assert db.alias_events("proj") == []


def test_a_record_json_cannot_hold_is_refused_before_writing(backend: Any) -> None:
    db = tables(backend)
    with pytest.raises(RegistryError, match="JSON cannot store"):
        db.add_model_version("proj", make_version(params={"callback": object()}))
    assert db.model_names("proj") == []


def test_sqlite_model_history_is_append_only(tmp_path: Path) -> None:
    backend = SQLiteRegistry(tmp_path / "r.db")
    backend.add_model_version("p", make_version())
    backend.move_alias("p", "churn", "production", 1, reason="promote")
    backend.close()
    conn = sqlite3.connect(tmp_path / "r.db")
    for statement in ("UPDATE hw_model_versions SET run_id = 'x'",
                      "DELETE FROM hw_model_versions",
                      "UPDATE hw_model_events SET reason = 'x'", "DELETE FROM hw_model_events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    conn.close()


def test_postgres_model_history_is_append_only(postgres_url: str, postgres_schema: str) -> None:
    backend = PostgresRegistry(postgres_url, schema=postgres_schema)
    backend.add_model_version("p", make_version())
    backend.move_alias("p", "churn", "production", 1, reason="promote")
    backend.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in ("UPDATE {s}.hw_model_versions SET run_id = 'x'",
                          "DELETE FROM {s}.hw_model_versions",
                          "DELETE FROM {s}.hw_model_events"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement.format(s=f'"{postgres_schema}"'))


ROUNDS = 8
WORKERS = 3


def _register(target: dict[str, Any], worker: int, barrier: Any) -> None:
    backend = open_target(target)
    barrier.wait(timeout=60)
    for round_ in range(ROUNDS):
        backend.add_model_version("proj", make_version(run_id=f"w{worker}r{round_}"))
    backend.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_registrations_never_share_a_number(kind: str, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    target = backend_target(kind, tmp_path, request)
    open_target(target).close()
    run_workers(_register, target, WORKERS)

    backend = open_target(target)
    versions = backend.model_versions("proj", "churn")
    backend.close()
    assert [v.version for v in versions] == list(range(1, WORKERS * ROUNDS + 1))
    assert sorted(v.run_id for v in versions) == sorted(
        f"w{w}r{r}" for w in range(WORKERS) for r in range(ROUNDS))
