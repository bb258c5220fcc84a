"""The Redis store's own idle connections: shared by threads, checked before reuse."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from headwater.online.base import ViewKeys
from headwater.online.redis import RedisOnlineStore
from headwater.testing.online import int_keys, new_view, record


@pytest.fixture
def store(redis_url: str, redis_project: str) -> Iterator[RedisOnlineStore]:
    instance = RedisOnlineStore(redis_url, redis_project)
    yield instance
    instance.close()


def test_threads_share_the_connections_and_each_gets_its_own_answers(
        store: RedisOnlineStore) -> None:
    view, keys = new_view(), int_keys(64)
    store.write(view, keys, [record(i) for i in range(64)])

    def read(i: int) -> list[list[bytes | None]]:
        return store.read([ViewKeys(view, keys[i % 64:i % 64 + 3])])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(read, range(2_000)))
    for i, answer in enumerate(answers):
        assert answer == [[record(j) for j in range(i % 64, min(i % 64 + 3, 64))]]
    assert 1 <= len(store._idle) <= 8  # at most one connection per concurrent caller


def test_a_connection_closed_by_the_server_is_reconnected_before_reuse(
        store: RedisOnlineStore, redis_url: str) -> None:
    import redis

    view, keys = new_view(), int_keys(1)
    store.write(view, keys, [record(1)])
    (conn,) = store._idle
    conn.send_command("CLIENT", "ID")
    own_id = conn.read_response()
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.client_kill_filter(_id=own_id) == 1  # only this store's connection
    finally:
        client.close()
    assert store.read([ViewKeys(view, keys)]) == [[record(1)]]  # no error: reconnected
    (conn,) = store._idle
    conn.send_command("CLIENT", "ID")
    assert conn.read_response() != own_id  # a new socket, not the killed one
