"""Shared fixtures: real services, skipped on a laptop without them, required in CI.

``.ci/run`` sets ``HEADWATER_REQUIRE_SERVICES=1``; then an unreachable service fails the test
instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.testing.processes import RedisServer, ServiceStartError, free_port

PrivateRedis = RedisServer
"""A ``redis-server`` of one test's own (:class:`~headwater.testing.processes.RedisServer`)."""

POSTGRES_URL = os.environ.get("HEADWATER_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
# The shared Redis: tests use their own key prefixes and delete them; never FLUSHALL it.
REDIS_URL = os.environ.get("HEADWATER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# One OpenMP thread per test process and the processes it starts (servers, schedulers): with
# two test workers on two cores, estimators' thread pools spinning against each other turn a
# 0.1 s HistGradientBoosting fit into seconds. Set before any test imports an estimator.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _require_services() -> bool:
    return os.environ.get("HEADWATER_REQUIRE_SERVICES") == "1"


def service_unavailable(name: str, reason: str) -> None:
    """Skip (on a laptop) or fail (in CI) a test whose service is unreachable."""
    message = f"{name} is unreachable ({reason}); start it or set the URL variable"
    if _require_services():
        pytest.fail(f"{message}; HEADWATER_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of the real PostgreSQL test database."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        service_unavailable("PostgreSQL", str(exc).strip().splitlines()[0])
    return POSTGRES_URL


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    import psycopg

    schema = f"hw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of the shared Redis. Tests keep to their own key prefixes and delete them."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        service_unavailable("Redis", str(exc))
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server started for this test (``.url``, ``.stop()``, ``.start()``,
    ``.restart()``); killed at teardown whatever happened."""
    binary = os.environ.get("HEADWATER_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        service_unavailable("redis-server", "no redis-server binary on PATH")
    assert binary is not None
    workdir = tmp_path / "private-redis"
    workdir.mkdir()
    server = PrivateRedis(binary, workdir)
    try:
        for attempt in range(3):  # another process may take the free port before we bind it
            try:
                server.start()
                break
            except ServiceStartError:
                if attempt == 2:
                    raise
                server.port = free_port()
        yield server
    finally:
        server.kill()


NATS_URL = os.environ.get("HEADWATER_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The URL of the shared NATS server with JetStream. Tests use their own subjects and
    delete the streams they create."""
    import asyncio

    import nats
    import nats.errors

    async def probe() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=0,
                                    allow_reconnect=False)
        try:
            await client.jetstream().account_info()
        finally:
            await client.close()

    try:
        asyncio.run(probe())
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        service_unavailable("NATS JetStream", f"{type(exc).__name__} {exc}")
    return NATS_URL
