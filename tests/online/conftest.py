"""Every online store runs the same conformance suite: SQLite, the real Redis, and a real
three-node Redis Cluster of this test session's own."""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.online.redis import RedisOnlineStore
from headwater.online.redis_cluster import RedisClusterOnlineStore
from headwater.online.sqlite import SQLiteOnlineStore
from headwater.testing.online import StoreFactory
from headwater.testing.redis_cluster import LocalRedisCluster
from tests.conftest import service_unavailable


def delete_project_keys(url: str, project: str) -> None:
    """Remove every key of ``project`` from a Redis (never anything else)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"hw:{project}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
    finally:
        client.close()


@pytest.fixture
def redis_project(redis_url: str) -> Iterator[str]:
    """A project name of this test's own on the shared Redis; its keys go at teardown."""
    project = f"hwtest_{uuid.uuid4().hex[:12]}"
    yield project
    delete_project_keys(redis_url, project)


def start_cluster(workdir: Path) -> LocalRedisCluster:
    """A started three-node Redis Cluster in ``workdir``; skips (fails in CI) without a
    redis-server binary."""
    binary = os.environ.get("HEADWATER_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        service_unavailable("redis-server", "no redis-server binary on PATH for Redis Cluster")
    assert binary is not None
    for attempt in range(3):  # another process may take a free port before a node binds it
        cluster = LocalRedisCluster(binary, workdir / f"attempt-{attempt}")
        try:
            cluster.start()
            return cluster
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A three-node Redis Cluster for the test session (each test keeps to a project of
    its own); stopped at the end."""
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_project(redis_cluster: LocalRedisCluster) -> Iterator[str]:
    """A project name of this test's own on the session's cluster; its keys go at
    teardown."""
    project = f"hwtest_{uuid.uuid4().hex[:12]}"
    yield project
    for node in range(len(redis_cluster.ports)):
        client = redis_cluster.client(node)
        try:
            pipe = client.pipeline(transaction=False)
            for key in client.scan_iter(match=f"hw:{project}:*", count=1000):
                pipe.unlink(key)  # one key a command: the keys are in many slots
            pipe.execute(raise_on_error=False)
        finally:
            client.close()


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def online_store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "sqlite":
        return functools.partial(SQLiteOnlineStore, tmp_path / "state" / "online.db")
    if request.param == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster")
        project = request.getfixturevalue("cluster_project")
        return functools.partial(RedisClusterOnlineStore, cluster.url, project)
    url = request.getfixturevalue("redis_url")
    project = request.getfixturevalue("redis_project")
    return functools.partial(RedisOnlineStore, url, project)
