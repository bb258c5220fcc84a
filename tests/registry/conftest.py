"""Every registry backend runs the same conformance suite: SQLite and real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import headwater as hw
from headwater.registry.base import RegistryBackend
from headwater.registry.catalog import Registry
from headwater.registry.postgres import PostgresRegistry
from headwater.registry.sql import SQLRegistryBackend
from headwater.registry.sqlite import SQLiteRegistry


def make_backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> RegistryBackend:
    if kind == "sqlite":
        return SQLiteRegistry(tmp_path / "registry.db")
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("postgres_schema")
    return PostgresRegistry(url, schema=schema)


@pytest.fixture(params=["sqlite", "postgres"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sql(backend_kind: str, tmp_path: Path,
        request: pytest.FixtureRequest) -> Iterator[SQLRegistryBackend]:
    backend = make_backend(backend_kind, tmp_path, request)
    assert isinstance(backend, SQLRegistryBackend)
    yield backend
    backend.close()


@pytest.fixture
def backend(backend_kind: str, tmp_path: Path,
            request: pytest.FixtureRequest) -> Iterator[RegistryBackend]:
    store = make_backend(backend_kind, tmp_path, request)
    yield store
    store.close()


@pytest.fixture
def registry(backend: RegistryBackend) -> Registry:
    return Registry(backend, "proj")


DRIVER = hw.Entity("driver", join_keys=["driver_id"])


def view(name: str = "driver_stats", ttl_days: int = 1,
         features: tuple[str, ...] = ("conv_rate", "trips")) -> hw.FeatureView:
    return hw.FeatureView(
        name=name,
        entities=[DRIVER],
        source=hw.FileSource("data/driver_stats.parquet", timestamp_field="event_timestamp"),
        schema=[hw.Field(f, hw.Float64) for f in features],
        ttl=timedelta(days=ttl_days),
    )


def open_target(target: dict[str, object]) -> SQLRegistryBackend:
    """A backend for a worker process: ``{"kind": "sqlite", "path"}`` or ``{"kind":
    "postgres", "url", "schema"}`` (process arguments must be picklable, backends are not)."""
    if target["kind"] == "sqlite":
        return SQLiteRegistry(str(target["path"]))
    return PostgresRegistry(str(target["url"]), schema=str(target["schema"]))


def backend_target(kind: str, tmp_path: Path, request: pytest.FixtureRequest
                   ) -> dict[str, object]:
    """What :func:`open_target` opens for ``kind`` (``sqlite`` in ``tmp_path``, or the
    test PostgreSQL schema)."""
    if kind == "sqlite":
        return {"kind": kind, "path": str(tmp_path / "registry.db")}
    return {"kind": kind, "url": request.getfixturevalue("postgres_url"),
            "schema": request.getfixturevalue("postgres_schema")}


def run_workers(work: Callable[[dict[str, object], int, Any], None],
                target: dict[str, object], workers: int) -> None:
    """Run ``work(target, worker, barrier)`` in ``workers`` spawned processes that start
    together at the barrier; each must exit cleanly."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=work, args=(target, w, barrier)) for w in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
    assert [proc.exitcode for proc in procs] == [0] * workers
