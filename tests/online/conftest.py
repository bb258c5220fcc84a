"""Every online store runs the same conformance suite: SQLite and the real Redis."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.online.redis import RedisOnlineStore
from headwater.online.sqlite import SQLiteOnlineStore
from headwater.testing.online import StoreFactory


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


@pytest.fixture(params=["sqlite", "redis"])
def online_store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "sqlite":
        return functools.partial(SQLiteOnlineStore, tmp_path / "state" / "online.db")
    url = request.getfixturevalue("redis_url")
    project = request.getfixturevalue("redis_project")
    return functools.partial(RedisOnlineStore, url, project)
