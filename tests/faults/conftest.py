"""Servers of each fault test's own: a persistent redis-server and a PostgreSQL cluster, on
free loopback ports with their data in temporary folders, stopped and deleted afterwards.
A missing binary skips the test, or fails it under HEADWATER_REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.testing.processes import (
    PostgresCluster,
    RedisServer,
    ServiceStartError,
    free_port,
)
from tests.conftest import service_unavailable


def redis_binary() -> str:
    """The redis-server binary, or skip (fail in CI) without one."""
    binary = os.environ.get("HEADWATER_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        service_unavailable("redis-server", "no redis-server binary on PATH")
    assert binary is not None
    return binary


def start_redis(workdir: Path, *, persist: bool) -> RedisServer:
    """A started RedisServer; retries on another port if one was taken meanwhile."""
    server = RedisServer(redis_binary(), workdir, persist=persist)
    for attempt in range(3):
        try:
            server.start()
            return server
        except ServiceStartError:
            if attempt == 2:
                raise
            server.port = free_port()
    return server


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server whose acknowledged writes survive a stop and start (AOF, fsync
    always), killed at teardown."""
    server = start_redis(tmp_path / "redis-aof", persist=True)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server without persistence for this test only, killed at teardown."""
    server = start_redis(tmp_path / "redis", persist=False)
    try:
        yield server
    finally:
        server.kill()


def postgres_bin() -> Path:
    """The newest PostgreSQL server binaries, or skip (fail in CI) without them."""
    configured = os.environ.get("HEADWATER_TEST_POSTGRES_BIN")
    candidates = [Path(configured)] if configured else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return Path(str(shutil.which("initdb"))).parent
    service_unavailable("PostgreSQL server binaries",
                        "no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH "
                        "(set HEADWATER_TEST_POSTGRES_BIN)")
    raise AssertionError("unreachable")


@pytest.fixture
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started PostgreSQL cluster of this test's own (``.url``,
    ``.restart_immediately()``), stopped and deleted at teardown."""
    cluster = PostgresCluster(postgres_bin())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
