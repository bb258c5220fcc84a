"""Redis specifics: the key layout, project namespaces, command counts, clear errors, and
recovery when a real Redis stops and starts again (a private redis-server, never the shared
one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from headwater.errors import ConfigError, StoreUnavailableError
from headwater.online.base import ViewKeys
from headwater.online.redis import RedisOnlineStore
from headwater.testing.online import int_keys, record
from headwater.testing.online_model import append_unmarked, applied_ids
from tests.conftest import PrivateRedis


@pytest.fixture
def store(redis_url: str, redis_project: str) -> Iterator[RedisOnlineStore]:
    instance = RedisOnlineStore(redis_url, redis_project)
    yield instance
    instance.close()


@pytest.fixture
def private_store(private_redis: PrivateRedis) -> Iterator[RedisOnlineStore]:
    instance = RedisOnlineStore(private_redis.url, "proj")
    yield instance
    instance.close()


def command_calls(url: str) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT (a private server only)."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def reset_stats(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.config_resetstat()
    finally:
        client.close()


def test_one_hash_per_entity_with_one_field_per_view(
        store: RedisOnlineStore, redis_url: str, redis_project: str) -> None:
    (key,) = int_keys(1)
    store.write("trips", [key], [record(1, None, "t")])
    store.write("rates", [key], [record(2, None, "r")])
    client = redis.Redis.from_url(redis_url)
    try:
        name = b"hw:" + redis_project.encode() + b":{" + key + b"}"
        assert client.hgetall(name) == {b"trips": record(1, None, "t"),
                                        b"rates": record(2, None, "r")}
        assert list(client.scan_iter(match=f"hw:{redis_project}:*")) == [name]
    finally:
        client.close()


def test_projects_sharing_a_redis_do_not_see_each_other(
        redis_url: str, redis_project: str) -> None:
    first = RedisOnlineStore(redis_url, redis_project)
    second = RedisOnlineStore(redis_url, redis_project + "_b")
    keys = int_keys(3)
    try:
        first.write("v", keys, [record(1, None, "first")] * 3)
        second.write("v", keys[:1], [record(0, None, "second")])
        assert second.read([ViewKeys("v", keys)]) == [[record(0, None, "second"), None, None]]
        assert first.read([ViewKeys("v", keys[:1])]) == [[record(1, None, "first")]]
        assert second.delete_view("v") == 1
        assert first.read([ViewKeys("v", keys)]) == [[record(1, None, "first")] * 3]
    finally:
        second.delete_view("v")
        first.close()
        second.close()


def test_a_read_is_one_hmget_per_entity_whatever_the_views(
        private_store: RedisOnlineStore, private_redis: PrivateRedis) -> None:
    drivers = int_keys(2)
    for view in ("a", "b", "c"):
        private_store.write(view, drivers, [record(1, None, view)] * 2)
    reset_stats(private_redis.url)
    got = private_store.read([ViewKeys("a", drivers[:1]), ViewKeys("b", drivers[:1]),
                              ViewKeys("c", drivers[:1])])
    assert got == [[record(1, None, "a")], [record(1, None, "b")], [record(1, None, "c")]]
    assert command_calls(private_redis.url).get("hmget") == 1

    reset_stats(private_redis.url)
    got = private_store.read([ViewKeys("a", drivers), ViewKeys("c", drivers[::-1]),
                              ViewKeys("b", drivers[1:])])
    assert got == [[record(1, None, "a")] * 2, [record(1, None, "c")] * 2,
                   [record(1, None, "b")]]
    assert command_calls(private_redis.url).get("hmget") == 2


def test_writes_are_one_script_call_per_record(
        private_store: RedisOnlineStore, private_redis: PrivateRedis) -> None:
    keys = int_keys(2_500)
    private_store.write("v", keys[:1], [record(0)])  # loads the script
    reset_stats(private_redis.url)
    assert private_store.write("v", keys, [record(1)] * len(keys)) == len(keys)
    calls = command_calls(private_redis.url)
    assert calls.get("evalsha") == len(keys)
    assert "script|load" not in calls and "eval" not in calls


def test_the_script_is_loaded_again_after_script_flush(
        private_store: RedisOnlineStore, private_redis: PrivateRedis) -> None:
    keys = int_keys(3)
    assert private_store.write("v", keys, [record(1)] * 3) == 3
    client = redis.Redis.from_url(private_redis.url)
    try:
        client.script_flush()
    finally:
        client.close()
    batch = [record(2), record(0), record(1, None, "tie")]
    assert private_store.write("v", keys, batch) == 2
    assert private_store.read([ViewKeys("v", keys)]) == [[record(2), record(1),
                                                          record(1, None, "tie")]]


def test_recovers_by_itself_when_redis_comes_back(
        private_store: RedisOnlineStore, private_redis: PrivateRedis) -> None:
    keys = int_keys(2)
    assert private_store.write("v", keys, [record(1)] * 2) == 2
    assert private_store.read([ViewKeys("v", keys)]) == [[record(1)] * 2]

    private_redis.stop()
    address = f"127.0.0.1:{private_redis.port}"
    for attempt in (lambda: private_store.read([ViewKeys("v", keys)]),
                    lambda: private_store.read([ViewKeys("v", keys[:1])]),
                    lambda: private_store.read([ViewKeys("v", keys), ViewKeys("w", keys)]),
                    lambda: private_store.write("v", keys, [record(2)] * 2),
                    private_store.ping,
                    lambda: private_store.delete_view("v")):
        with pytest.raises(StoreUnavailableError, match=address) as info:
            attempt()
        assert "Fix:" in str(info.value)

    private_redis.start()  # same port; an empty server (no persistence), no scripts loaded
    private_store.ping()
    assert private_store.read([ViewKeys("v", keys)]) == [[None, None]]
    assert private_store.write("v", keys, [record(3)] * 2) == 2
    assert private_store.read([ViewKeys("v", keys)]) == [[record(3)] * 2]


def test_a_restart_between_calls_is_invisible(
        private_store: RedisOnlineStore, private_redis: PrivateRedis) -> None:
    keys = int_keys(1)
    private_store.write("v", keys, [record(1)])
    private_redis.restart()  # pooled connections are now closed by the old server
    assert private_store.read([ViewKeys("v", keys)]) == [[None]]
    assert private_store.write("v", keys, [record(1)]) == 1


def test_errors_never_show_the_password(private_redis: PrivateRedis) -> None:
    private_redis.stop()
    url = private_redis.url.replace("redis://", "redis://user:s3cret@") + "?password=s3cret"
    store = RedisOnlineStore(url, "proj")
    try:
        with pytest.raises(StoreUnavailableError) as info:
            store.ping()
    finally:
        store.close()
    message = str(info.value)
    assert "s3cret" not in message
    assert f"redis://user:***@127.0.0.1:{private_redis.port}/0" in message
    assert "Fix:" in message


def test_an_error_reply_is_a_clear_error_and_the_connection_stays_usable(
        private_store: RedisOnlineStore, private_redis: PrivateRedis) -> None:
    good, bad = int_keys(2)
    private_store.write("v", [good], [record(1)])
    client = redis.Redis.from_url(private_redis.url)
    try:
        client.set(b"hw:proj:{" + bad + b"}", b"not a hash")
    finally:
        client.close()
    with pytest.raises(StoreUnavailableError, match="WRONGTYPE"):
        private_store.read([ViewKeys("v", [good, bad, good])])
    with pytest.raises(StoreUnavailableError, match="WRONGTYPE"):
        private_store.write("v", [bad, good], [record(2), record(2)])
    assert private_store.read([ViewKeys("v", [good])]) == [[record(2)]]


def test_an_invalid_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="online: url"):
        RedisOnlineStore("redis://127.0.0.1:notaport/0", "proj")


def test_an_update_retries_when_a_record_or_marker_it_read_changes(
        store: RedisOnlineStore, redis_url: str, redis_project: str) -> None:
    keys = int_keys(3)
    other = RedisOnlineStore(redis_url, redis_project)
    calls: list[set[str]] = []
    inner = append_unmarked([(keys[0], "a"), (keys[2], "b")])

    def modify(marked: set[str], current: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
        calls.append(marked)
        if len(calls) == 1:  # another writer applies "b" to a key read here, meanwhile
            other.update("v", [keys[2]], append_unmarked([(keys[2], "b")]), scope="s",
                         ids=["b"])
        elif len(calls) == 2:  # and then only marks "a" under the scope (no record read here)
            other.update("v", [], lambda m, c: {}, scope="s", ids=["a"])
        return inner(marked, current)

    try:
        assert store.update("v", keys, modify, scope="s", ids=["a", "b"]) == 3
    finally:
        other.close()
    # the first two attempts found what they read changed and wrote nothing
    assert calls == [set(), {"b"}, {"a", "b"}]
    records = store.read([ViewKeys("v", keys)])[0]
    assert [applied_ids(data) for data in records] == [[], [], ["b"]]
    assert store.markers_present("s", ["a", "b"]) == {"a", "b"}


def test_an_update_of_thousands_of_entities_is_a_few_commands(
        private_store: RedisOnlineStore, private_redis: PrivateRedis) -> None:
    keys = int_keys(5_000)
    ids = [str(i) for i in range(5_000)]
    reset_stats(private_redis.url)
    deliveries = list(zip(keys, ids, strict=True))
    assert private_store.update("v", keys, append_unmarked(deliveries), scope="s",
                                ids=ids) == len(keys)
    calls = command_calls(private_redis.url)
    # two scripts (read; check and commit), no WATCH: Redis checks each watched key against
    # the others, so watching thousands of keys is quadratic
    assert calls.get("eval") == 2 and "watch" not in calls and "multi" not in calls
    # records without a version yet: version and record read; the commit checks that the
    # version and the record are still absent, then sets both with one HSET
    assert calls.get("hget") == 3 * len(keys) and calls.get("hexists") == len(keys)
    assert calls.get("hset") == len(keys)
    assert [applied_ids(d) for d in private_store.read([ViewKeys("v", keys[:2])])[0]] == [
        ["0"], ["1"]]
    assert private_store.markers_present("s", ids) == set(ids)

    # the next batch: only the versions are read and checked, no record is sent back
    more = [f"x{i}".ljust(200, "-") for i in range(5_000)]
    reset_stats(private_redis.url)
    sent = net_output_bytes(private_redis.url)
    assert private_store.update("v", keys, append_unmarked(list(zip(keys, more, strict=True))),
                                scope="s", ids=more) == len(keys)
    replied = net_output_bytes(private_redis.url) - sent
    calls = command_calls(private_redis.url)
    # one HGET of the version per entity in the read and one in the commit
    assert calls.get("eval") == 2 and calls.get("hget") == 2 * len(keys)
    records = private_store.read([ViewKeys("v", keys)])[0]
    assert [applied_ids(d) for d in records[:2]] == [["0", more[0]], ["1", more[1]]]
    # the replies of the read held versions and "unchanged", far less than the records
    assert replied < sum(map(len, records)) // 2


def net_output_bytes(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_net_output_bytes"])
    finally:
        client.close()


def test_a_held_record_changed_by_another_writer_is_read_again(
        store: RedisOnlineStore, redis_url: str, redis_project: str) -> None:
    keys = int_keys(3)
    other = RedisOnlineStore(redis_url, redis_project)
    try:
        store.update("v", keys, append_unmarked([(k, "a") for k in keys]), scope="s", ids=["a"])
        # the other writer changes one record this store holds, then deletes and rewrites
        # another from scratch (a version is never used twice, so the held one cannot match)
        other.update("v", keys[:1], append_unmarked([(keys[0], "b")]), scope="s", ids=["b"])
        other.delete_view("v")
        other.update("v", keys[1:2], append_unmarked([(keys[1], "c")]), scope="s", ids=["c"])
        seen: list[dict[bytes, bytes | None]] = []

        def modify(marked: set[str], current: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
            seen.append(current)
            return {}

        store.update("v", keys, modify, scope="s", ids=["d"])
        (current,) = seen
        assert [None if current[k] is None else applied_ids(current[k]) for k in keys] == [
            None, ["c"], None]
    finally:
        other.close()


def test_a_write_of_another_generation_fails_an_update_that_read_the_older_record(
        store: RedisOnlineStore, redis_url: str, redis_project: str) -> None:
    (key,) = int_keys(1)
    other = RedisOnlineStore(redis_url, redis_project)
    store.update("v", [key], append_unmarked([(key, "a")]), scope="s", ids=["a"])
    newer = record(5, None, "plain", generation=7)
    seen: list[bytes | None] = []

    def modify(marked: set[str], current: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
        seen.append(current[key])
        if len(seen) == 1:  # a redefined view's materialization writes meanwhile
            assert other.write("v", [key], [newer]) == 1
            return append_unmarked([(key, "b")])(marked, current)
        return {}  # the record is of another generation now: left alone

    try:
        store.update("v", [key], modify, scope="s", ids=["b"])
    finally:
        other.close()
    assert seen[1] == newer and store.read([ViewKeys("v", [key])]) == [[newer]]


def test_delete_view_removes_records_and_versions(
        store: RedisOnlineStore, redis_url: str, redis_project: str) -> None:
    keys = int_keys(4)
    store.update("v", keys, append_unmarked([(k, "a") for k in keys]), scope="s", ids=["a"])
    assert store.delete_view("v") == 4
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"hw:{redis_project}:{{*")) == []
    finally:
        client.close()


def test_a_deferred_update_after_a_prefetch_reads_nothing(
        private_store: RedisOnlineStore, private_redis: PrivateRedis) -> None:
    known, new = int_keys(300), int_keys(200, start=300)

    def apply(store: RedisOnlineStore, keys: list[bytes], tag: str, **how: bool) -> None:
        ids = [f"{tag}{i}" for i in range(len(keys))]
        store.update("v", keys, append_unmarked(list(zip(keys, ids, strict=True))),
                     scope="s", ids=ids, **how)

    apply(private_store, known, "a")
    writer = RedisOnlineStore(private_redis.url, "proj")  # records this store never held
    try:
        apply(writer, new[:100], "b")
    finally:
        writer.close()
    keys = known + new
    reset_stats(private_redis.url)
    private_store.prefetch("v", keys)
    calls = command_calls(private_redis.url)
    # one read script, of the 200 keys not held: versions and records (absent for 100)
    assert calls.get("eval") == 1 and calls.get("hget") == 2 * len(new)
    reset_stats(private_redis.url)
    apply(private_store, keys, "c", likely_unmarked=True, defer=True)
    private_store.settle()
    calls = command_calls(private_redis.url)
    assert calls.get("eval") == 1  # the commit alone: nothing read, nothing run again
    got = [applied_ids(d) for d in private_store.read([ViewKeys("v", keys)])[0]]
    assert got == ([[f"a{i}", f"c{i}"] for i in range(300)]
                   + [[f"b{i}", f"c{300 + i}"] for i in range(100)]
                   + [[f"c{400 + i}"] for i in range(100)])
