"""Redis Cluster specifics on real ``redis-server`` processes: which keys share a slot and
how many commands a read or an update sends, slots that move under a running store, a node
that stops and comes back, and the headwater.yaml switch."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from headwater.config import parse_settings
from headwater.errors import ConfigError, StoreUnavailableError
from headwater.online import open_online_store
from headwater.online.base import ViewKeys
from headwater.online.redis_cluster import RedisClusterOnlineStore
from headwater.testing.online import int_keys, new_view, record
from headwater.testing.online_model import append_unmarked, applied_ids
from headwater.testing.redis_cluster import LocalRedisCluster

from .conftest import start_cluster


@pytest.fixture
def store(redis_cluster: LocalRedisCluster, cluster_project: str
          ) -> Iterator[RedisClusterOnlineStore]:
    instance = RedisClusterOnlineStore(redis_cluster.url, cluster_project)
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A cluster of this module's own, for tests that move slots and stop nodes."""
    cluster = start_cluster(tmp_path_factory.mktemp("own-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


class CommandLog:
    """Every command the cluster's nodes run (SLOWLOG with a zero threshold), per node."""

    def __init__(self, cluster: LocalRedisCluster) -> None:
        self.cluster = cluster

    def __enter__(self) -> CommandLog:
        for node in range(len(self.cluster.ports)):
            self.cluster._call(node, "CONFIG", "SET", "slowlog-log-slower-than", 0)
            self.cluster._call(node, "SLOWLOG", "RESET")
        return self

    def commands(self, *names: bytes) -> dict[int, list[list[bytes]]]:
        """Per node, the commands named ``names`` (each as its arguments)."""
        out: dict[int, list[list[bytes]]] = {}
        for node in range(len(self.cluster.ports)):
            client = self.cluster.client(node)
            try:
                entries = client.execute_command("SLOWLOG", "GET", 10_000)
            finally:
                client.close()
            for entry in reversed(entries):
                args = list(entry["command"].split(b" ")) if isinstance(
                    entry, dict) else list(entry[3])
                if args[0].upper() in names:
                    out.setdefault(node, []).append(args)
        return out

    def __exit__(self, *exc: object) -> None:
        for node in range(len(self.cluster.ports)):
            self.cluster._call(node, "CONFIG", "SET", "slowlog-log-slower-than", 10_000)


def test_plain_views_of_an_entity_share_a_slot_and_read_in_one_command(
        store: RedisClusterOnlineStore, redis_cluster: LocalRedisCluster,
        cluster_project: str) -> None:
    (key,) = int_keys(1)
    views = [new_view("trips"), new_view("rates"), new_view("zone")]
    for n, view in enumerate(views):
        store.write(view, [key], [record(n, None, view)])
    name = f"hw:{cluster_project}:{{".encode() + key + b"}"
    entity_node = redis_cluster.node_of_slot(key_slot(name))
    client = redis_cluster.client(entity_node)
    try:  # one hash, on the node of its slot, one field per view
        assert client.hgetall(name) == {v.encode(): record(n, None, v)
                                        for n, v in enumerate(views)}
    finally:
        client.close()
    with CommandLog(redis_cluster) as log:
        assert store.read([ViewKeys(v, [key]) for v in views]) == [
            [record(n, None, v)] for n, v in enumerate(views)]
        hmgets = log.commands(b"HMGET")
    entity_reads = [(node, args) for node, commands in hmgets.items() for args in commands
                    if b"}:r" not in args[1]]
    # the entity's plain views: one HMGET of all three fields, to the entity's node; the
    # rest is one HMGET per view of its (empty) tile records
    assert len(entity_reads) == 1
    assert entity_reads[0][0] == entity_node
    assert sorted(entity_reads[0][1][2:]) == sorted(v.encode() for v in views)
    assert sum(map(len, hmgets.values())) == 1 + len(views)


def test_an_aggregated_views_records_versions_and_markers_share_one_slot(
        store: RedisClusterOnlineStore, redis_cluster: LocalRedisCluster,
        cluster_project: str) -> None:
    view, scope, keys = new_view("tiles"), new_view("stream"), int_keys(40)
    store.update(view, keys, append_unmarked([(k, f"e{i}") for i, k in enumerate(keys)]),
                 scope=scope, ids=[f"e{i}" for i in range(40)])
    names: list[bytes] = []
    for node in range(3):
        client = redis_cluster.client(node)
        try:
            names += list(client.scan_iter(match=f"hw:{cluster_project}:{{v:*"))
        finally:
            client.close()
    prefix = f"hw:{cluster_project}:{{v:{view}}}:".encode()
    assert sorted(names) == [prefix + b"m:" + scope.encode(), prefix + b"r", prefix + b"v"]
    assert len({key_slot(name) for name in names}) == 1
    node = redis_cluster.node_of_slot(key_slot(names[0]))
    client = redis_cluster.client(node)
    try:
        assert client.hlen(prefix + b"r") == 40 and client.hlen(prefix + b"v") == 40
        assert client.zcard(prefix + b"m:" + scope.encode()) == 40
    finally:
        client.close()
    views_of_scope = f"hw:{cluster_project}:{{s:{scope}}}:views".encode()
    client = redis_cluster.client(redis_cluster.node_of_slot(key_slot(views_of_scope)))
    try:  # markers_present(scope) finds the view the scope marks under here
        assert client.smembers(views_of_scope) == {view.encode()}
    finally:
        client.close()
    # a second batch: its commit is one script call, to that one node
    with CommandLog(redis_cluster) as log:
        store.update(view, keys, append_unmarked([(k, f"f{i}") for i, k in enumerate(keys)]),
                     scope=scope, ids=[f"f{i}" for i in range(40)], likely_unmarked=True,
                     defer=True)
        store.settle()
        evals = log.commands(b"EVAL")
    commits = [args for commands in evals.values() for args in commands]
    assert list(evals) == [node] and len(commits) == 1
    assert store.markers_present(scope, ["e0", "f39", "g"]) == {"e0", "f39"}
    got = store.read([ViewKeys(view, keys)])[0]
    assert [applied_ids(r) for r in got] == [[f"e{i}", f"f{i}"] for i in range(40)]


def _key_on(cluster: LocalRedisCluster, project: str, node: int, avoid: set[int]) -> bytes:
    """An entity key whose hash is on ``node`` and in none of the slots ``avoid``."""
    for key in int_keys(2_000):
        slot = key_slot(f"hw:{project}:{{".encode() + key + b"}")
        if slot not in avoid and cluster.node_of_slot(slot) == node:
            return key
    raise AssertionError("no key found")


def test_moved_slots_are_followed_by_reads_writes_and_updates(
        own_cluster: LocalRedisCluster) -> None:
    project, view, tiles, scope = f"moved_{uuid.uuid4().hex[:8]}", "plain", "tiles", "s"
    store = RedisClusterOnlineStore(own_cluster.url, project)
    try:
        view_slot = key_slot(f"hw:{project}:{{v:{tiles}}}:r".encode())
        key = _key_on(own_cluster, project, own_cluster.node_of_slot(view_slot), set())
        entity_slot = key_slot(f"hw:{project}:{{".encode() + key + b"}")
        store.write(view, [key], [record(1, None, "one")])
        store.update(tiles, [key], append_unmarked([(key, "a")]), scope=scope, ids=["a"])
        # both slots move to another node behind the store's back: its map is stale
        for slot in (entity_slot, view_slot):
            own_cluster.move_slot(slot, (own_cluster.node_of_slot(slot) + 1) % 3)
        plain, merged = store.read([ViewKeys(view, [key]), ViewKeys(tiles, [key])])
        assert plain == [record(1, None, "one")]
        assert applied_ids(merged[0]) == ["a"]
        # the store learned the moves from the MOVED replies (no error made it reload)
        for slot in (entity_slot, view_slot):
            assert store._owner(slot).name == (
                f"127.0.0.1:{own_cluster.ports[own_cluster.node_of_slot(slot)]}")
        assert store.write(view, [key], [record(2, None, "two")]) == 1
        store.update(tiles, [key], append_unmarked([(key, "a"), (key, "b")]), scope=scope,
                     ids=["a", "b"])
        # and again, under a deferred commit sent to the old node: MOVED, then run again
        own_cluster.move_slot(view_slot, (own_cluster.node_of_slot(view_slot) + 1) % 3)
        store.update(tiles, [key], append_unmarked([(key, "c")]), scope=scope, ids=["c"],
                     likely_unmarked=True, defer=True)
        store.settle()
        fresh = RedisClusterOnlineStore(own_cluster.urls[2], project)
        try:
            plain, merged = fresh.read([ViewKeys(view, [key]), ViewKeys(tiles, [key])])
            assert plain == [record(2, None, "two")]
            assert applied_ids(merged[0]) == ["a", "b", "c"]
            assert fresh.markers_present(scope, ["a", "b", "c", "d"]) == {"a", "b", "c"}
        finally:
            fresh.close()
    finally:
        store.delete_view(view)
        store.delete_view(tiles)
        store.close()


def test_a_slot_in_migration_is_followed_by_asking_the_importing_node(
        own_cluster: LocalRedisCluster) -> None:
    project, tiles, scope = f"ask_{uuid.uuid4().hex[:8]}", "tiles", "s"
    store = RedisClusterOnlineStore(own_cluster.url, project)
    keys = int_keys(3)
    records = f"hw:{project}:{{v:{tiles}}}:r".encode()
    view_slot = key_slot(records)
    first = [(k, f"a{i}") for i, k in enumerate(keys)]
    store.update(tiles, keys, append_unmarked(first), scope=scope, ids=[i for _, i in first])
    target = (own_cluster.node_of_slot(view_slot) + 1) % 3
    source = own_cluster.start_migration(view_slot, target)
    finisher = threading.Timer(0.5, own_cluster.finish_migration, (view_slot, target))
    try:
        # the records hash alone goes over: the source answers ASK for it, and only the
        # importing node (asked with ASKING) has it
        own_cluster._call(source, "MIGRATE", "127.0.0.1", own_cluster.ports[target], "", 0,
                          5000, "KEYS", records)
        fresh = RedisClusterOnlineStore(own_cluster.url, project)
        try:
            assert [applied_ids(r) for r in fresh.read([ViewKeys(tiles, keys)])[0]] == [
                ["a0"], ["a1"], ["a2"]]
        finally:
            fresh.close()
        # an update's script spans keys now split over the two nodes (TRYAGAIN): it waits
        # for the migration to end, then runs once, on the new node
        finisher.start()
        second = [*first, *[(k, f"b{i}") for i, k in enumerate(keys)]]  # a redelivery too
        store.update(tiles, keys, append_unmarked(second), scope=scope,
                     ids=[i for _, i in second])
    finally:
        if finisher.is_alive() or finisher.finished.is_set():
            finisher.join()
        if own_cluster.node_of_slot(view_slot) != target:
            own_cluster.finish_migration(view_slot, target)
    assert [applied_ids(r) for r in store.read([ViewKeys(tiles, keys)])[0]] == [
        ["a0", "b0"], ["a1", "b1"], ["a2", "b2"]]
    assert store.markers_present(scope, ["a0", "b2", "c"]) == {"a0", "b2"}
    store.delete_view(tiles)
    store.close()


def test_a_node_down_is_named_and_the_store_recovers_when_it_is_back(
        own_cluster: LocalRedisCluster) -> None:
    project, view = f"down_{uuid.uuid4().hex[:8]}", "plain"
    store = RedisClusterOnlineStore(own_cluster.url, project, timeout=1.0)
    down = 1
    key = _key_on(own_cluster, project, down, set())
    other = _key_on(own_cluster, project, 2, set())
    try:
        assert store.write(view, [key, other], [record(1)] * 2) == 2
        own_cluster.stop_node(down)
        try:
            with pytest.raises(StoreUnavailableError) as error:
                store.read([ViewKeys(view, [key])])
            message = str(error.value)
            assert f"127.0.0.1:{own_cluster.ports[down]}" in message and "Fix:" in message
            with pytest.raises(StoreUnavailableError, match=str(own_cluster.ports[down])):
                store.write(view, [key], [record(2)])
        finally:
            own_cluster.start_node(down)
            own_cluster.wait_ok()
        # back (empty: no persistence): the same store works again, without a restart
        assert store.read([ViewKeys(view, [other])]) == [[record(1)]]
        assert store.write(view, [key], [record(3)]) == 1
        assert store.read([ViewKeys(view, [key, other])]) == [[record(3), record(1)]]
        store.update("tiles", [key], append_unmarked([(key, "a")]), scope="s", ids=["a"])
        assert store.markers_present("s", ["a"]) == {"a"}
        store.ping()
    finally:
        store.delete_view(view)
        store.delete_view("tiles")
        store.close()


def test_headwater_yaml_opens_the_cluster_store(
        tmp_path: Path, redis_cluster: LocalRedisCluster, cluster_project: str) -> None:
    settings = parse_settings({"project": cluster_project, "online": {
        "type": "redis", "url": redis_cluster.urls[1], "cluster": True}}, tmp_path)
    assert settings.online.cluster is True
    store = open_online_store(settings)
    try:
        assert isinstance(store, RedisClusterOnlineStore)
        keys = int_keys(50)
        assert store.write("v", keys, [record(1)] * 50) == 50
        assert store.read([ViewKeys("v", keys)]) == [[record(1)] * 50]
    finally:
        store.close()
    assert parse_settings({"project": "p", "online": {"type": "redis"}},
                          tmp_path).online.cluster is False


@pytest.mark.parametrize(("online", "message"), [
    ({"type": "redis", "cluster": "yes"}, "online.cluster must be true or false"),
    ({"type": "sqlite", "cluster": True}, "for 'type: redis' only"),
    ({"type": "redis", "cluster": True, "url": "unix:///tmp/redis.sock"},
     "needs a redis:// URL"),
])
def test_cluster_settings_are_checked(tmp_path: Path, online: dict[str, Any],
                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings({"project": "p", "online": online}, tmp_path)


def test_an_unreachable_cluster_names_the_seed_and_how_to_fix_it() -> None:
    from headwater.testing.processes import free_port

    store = RedisClusterOnlineStore(f"redis://:secret@127.0.0.1:{free_port()}/0", "p",
                                    timeout=0.5)
    try:
        with pytest.raises(StoreUnavailableError, match="CLUSTER SLOTS") as error:
            store.read([ViewKeys("v", int_keys(1))])
        assert "secret" not in str(error.value) and "Fix:" in str(error.value)
    finally:
        store.close()
