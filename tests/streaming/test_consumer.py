"""The consumer runtime end to end, over real Redis Streams and NATS JetStream: events in,
exact window aggregates online, every event once in the offline copy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import headwater as hw
from headwater.streaming.consumer import Consumer, Counters, open_reader, stream_feeds
from headwater.streaming.messages import Message
from tests.streaming.stream_repo import (
    RedisPublisher,
    close_enough,
    definitions,
    events,
    expected,
    make_repo,
    offline_rows,
    online_values,
    payloads,
    publisher,
    stream_yaml,
    unique_topic,
)

DRIVERS = [1001, 1002, 1003, 1004, 1005]


@dataclass
class Setup:
    kind: str
    url: str
    topic: str
    repo: Path


@pytest.fixture(params=["redis", "nats"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    kind = str(request.param)
    url = str(request.getfixturevalue("redis_url" if kind == "redis" else "nats_url"))
    topic = unique_topic()
    # NATS redelivers after ack_wait only: short for the restart tests, longer than a batch
    yaml = stream_yaml(kind, url, batch_size=300, claim_timeout_s=10 if kind == "nats" else 60)
    yield Setup(kind, url, topic, make_repo(tmp_path / "repo", topic, yaml))


def consume(repo: Path, consumer: str = "c1", idle_exit: float = 1.5) -> Counters:
    with hw.FeatureStore(repo) as store:
        feeds = stream_feeds(store)
        reader = open_reader(store.settings.stream, [f.topic for f in feeds], consumer)
        try:
            runtime = Consumer(store, feeds, reader, consumer=consumer,
                               batch_size=store.settings.stream.batch_size,
                               block_ms=store.settings.stream.block_ms)
            runtime.recover()
            return runtime.run(idle_exit=idle_exit)
        finally:
            reader.close()


def check_online(repo: Path, published: pa.Table) -> None:
    """Every driver's aggregates equal the brute-force window over the published events,
    and the plain view holds each driver's latest event."""
    at = published.column("ts")[-1].as_py() + timedelta(seconds=1)
    with hw.FeatureStore(repo) as store:
        got = online_values(store, at, DRIVERS)
        # the consistency law: training reads the offline copy and gets the same values
        frame = store.get_historical_features(
            pa.table({"driver_id": DRIVERS,
                      "event_timestamp": pa.array([at] * len(DRIVERS), pa.timestamp("us", "UTC"))}),
            [f"driver_trips:{name}" for name in got[0]]).to_arrow().to_pylist()
        for driver, values, offline in zip(DRIVERS, got, frame, strict=True):
            want = expected(published, at, driver)
            assert close_enough(values, want), (driver, values, want)
            assert close_enough({k: offline[k] for k in values}, want), (driver, offline, want)
        latest = store.get_online_features(["driver_last_trip:fare"],
                                           [{"driver_id": d} for d in DRIVERS], now=at)
        rows = published.to_pylist()
        for driver, fare in zip(DRIVERS, latest.to_dict()["fare"], strict=True):
            mine = [r for r in rows if r["driver_id"] == driver]
            assert fare == (max(mine, key=lambda r: r["ts"])["fare"] if mine else None)


def check_offline(repo: Path, published: pa.Table) -> None:
    """The visible offline copy holds every published event exactly once."""
    stored = offline_rows(repo)
    want = published.sort_by([("ts", "ascending"), ("driver_id", "ascending"),
                              ("fare", "ascending")])
    assert stored.num_rows == want.num_rows
    assert stored.select(want.column_names).to_pylist() == want.to_pylist()
    assert not list((repo / "data" / "trips").rglob(".*pending*"))


def test_events_reach_online_tiles_and_the_offline_copy(setup: Setup) -> None:
    published = events(2_000)
    with publisher(setup.kind, setup.url, setup.topic) as pub:
        pub.publish(payloads(published))
        counters = consume(setup.repo)
        assert (counters.events, counters.duplicates, counters.dead_lettered) == (2_000, 0, 0)
        assert counters.batches >= 2_000 // 300
        check_online(setup.repo, published)
        check_offline(setup.repo, published)
        # the offline copy is what training reads: it serves the same latest values
        at = published.column("ts")[-1].as_py() + timedelta(seconds=1)
        with hw.FeatureStore(setup.repo) as store:
            frame = store.get_historical_features(
                pa.table({"driver_id": DRIVERS,
                          "event_timestamp": pa.array([at] * 5, pa.timestamp("us", "UTC"))}),
                ["driver_last_trip:fare"]).to_arrow()
            online = store.get_online_features(["driver_last_trip:fare"],
                                               [{"driver_id": d} for d in DRIVERS], now=at)
        assert frame.column("fare").to_pylist() == online.to_dict()["fare"]


def test_late_events_within_the_window_still_count(setup: Setup) -> None:
    published = events(600, seed=1)
    at = published.column("ts")[-1].as_py()
    late = events(50, end=at - timedelta(minutes=20), seed=2)  # older than what was seen
    with publisher(setup.kind, setup.url, setup.topic) as pub:
        pub.publish(payloads(published))
        consume(setup.repo)
        pub.publish(payloads(late))
        assert consume(setup.repo).events == 50
        both = pa.concat_tables([published, late])
        check_online(setup.repo, both.sort_by("ts"))
        check_offline(setup.repo, both)


def test_malformed_messages_are_dead_lettered_and_the_rest_applied(setup: Setup) -> None:
    published = events(300, seed=3)
    good = payloads(published)
    bad = [b"{not json", b'{"driver_id": 1001, "ts": "soon", "fare": 1, "rating": 1}',
           json.dumps({"driver_id": 1001, "fare": 2.0, "rating": 1}).encode()]
    mixed = good[:100] + bad[:1] + good[100:200] + bad[1:] + good[200:]
    with publisher(setup.kind, setup.url, setup.topic) as pub:
        pub.publish(mixed)
        counters = consume(setup.repo)
        assert (counters.events, counters.dead_lettered) == (300, 3)
        check_online(setup.repo, published)
        check_offline(setup.repo, published)
        letters = pub.dead_letters()
        assert len(letters) == 3
        if isinstance(pub, RedisPublisher):
            reasons = [dict(letter)[b"reason"].decode() for letter in letters]  # type: ignore[arg-type]
        else:
            reasons = [headers["Hw-Reason"] for _, headers in letters]  # type: ignore[misc]
        assert "not a valid event" in reasons[0]
        assert "'ts'" in reasons[1] and "'ts'" in reasons[2]
        assert consume(setup.repo).events == 0  # all acknowledged, dead letters too


def test_two_consumers_in_one_group_share_the_stream_without_double_counting(
        setup: Setup) -> None:
    published = events(6_000, seed=4)
    with publisher(setup.kind, setup.url, setup.topic) as pub:
        pub.publish(payloads(published))
        command = [sys.executable, "-m", "headwater.cli.main", "stream", "--repo",
                   str(setup.repo), "--idle-exit", "3"]
        runs = [subprocess.Popen([*command, "--consumer", name], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
        outputs = [run.communicate(timeout=180) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        handled = [int(out.strip().splitlines()[-1].split(" events")[0].replace(",", ""))
                   for out, _ in outputs]
        assert sum(handled) == 6_000, outputs  # each event applied by exactly one of them
        check_online(setup.repo, published)
        check_offline(setup.repo, published)


def test_a_redelivered_batch_is_skipped(setup: Setup) -> None:
    """Committed but never acknowledged (a crash between the two): the events come again
    and change nothing."""
    published = events(500, seed=5)
    with publisher(setup.kind, setup.url, setup.topic) as pub, \
            hw.FeatureStore(setup.repo) as store:
        pub.publish(payloads(published))
        feeds = stream_feeds(store)
        reader = open_reader(store.settings.stream, [setup.topic], "c1")
        runtime = Consumer(store, feeds, reader, consumer="c1", batch_size=1000)
        messages = []
        for _ in range(50):
            messages += reader.read(500 - len(messages), 200)
            if len(messages) >= 500:
                break
        by_topic = feeds[0]
        runtime._commit(by_topic, messages)()  # committed and finished, not acknowledged
        reader.close()
        assert runtime.counters.events == 500
        # NATS redelivers once ack_wait (the claim timeout, 10 s here) has passed
        counters = consume(setup.repo, idle_exit=1.5 if setup.kind == "redis" else 15)
        assert (counters.events, counters.duplicates) == (0, 500)
        check_online(setup.repo, published)
        check_offline(setup.repo, published)


def test_a_recreated_nats_stream_is_not_taken_for_the_old_one(nats_url: str,
                                                               tmp_path: Path) -> None:
    """JetStream numbers a new stream from 1 again: its events must not be skipped as
    duplicates of the deleted stream's, whose ids stay marked as applied."""
    topic = unique_topic()
    repo = make_repo(tmp_path / "repo", topic, stream_yaml("nats", nats_url, batch_size=300,
                                                           claim_timeout_s=10))
    with publisher("nats", nats_url, topic) as pub:  # the stream is deleted on close
        pub.publish(payloads(events(100, seed=1)))
        first = consume(repo)
    with publisher("nats", nats_url, topic) as pub:
        pub.publish(payloads(events(100, seed=2)))
        second = consume(repo)
    assert (first.events, first.duplicates) == (100, 0)
    assert (second.events, second.duplicates) == (100, 0)


class _NoReader:
    """A reader with nothing to read: the test hands batches to the consumers itself."""

    def read(self, count: int, wait_ms: int) -> list[Message]:
        return []

    def ack(self, messages: object) -> None:
        return None

    def dead_letter(self, refused: object) -> None:
        return None

    def close(self) -> None:
        return None


def _takeover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, last: str
              ) -> tuple[pa.Table, list[Message], Path, Consumer, Consumer, hw.FeatureStore]:
    """Two consumers A and B of one repo; B's next check of which of its messages are
    applied lets A commit the first two of them (A took them over) right after. ``last``:
    the feed's last view (whose transaction commits the marks) is aggregated, or, with the
    aggregated view removed, plain."""
    from datetime import UTC, datetime

    t0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    table = events(4, end=t0, drivers=1)
    messages = [Message("trips", f"1-{i}", data=p) for i, p in enumerate(payloads(table))]
    repo = make_repo(tmp_path / "repo", "trips")
    if last == "plain":
        driver, _, latest = definitions("trips")
        with hw.FeatureStore(repo) as store:
            store.apply([driver, latest], prune=True)
    a, b = hw.FeatureStore(repo), hw.FeatureStore(repo)
    first = Consumer(a, stream_feeds(a), _NoReader(), consumer="A")
    second = Consumer(b, stream_feeds(b), _NoReader(), consumer="B")
    checked = b.online.markers_present

    def a_commits_meanwhile(scope: str, ids: list[str]) -> set[str]:
        found = checked(scope, ids)
        monkeypatch.setattr(b.online, "markers_present", checked)
        first.process(messages[:2])
        return found

    monkeypatch.setattr(b.online, "markers_present", a_commits_meanwhile)
    return table, messages, repo, first, second, a


def _offline_once(repo: Path, table: pa.Table) -> None:
    stored = offline_rows(repo)
    assert stored.num_rows == 4
    assert sorted(stored.column("fare").to_pylist()) == sorted(
        table.column("fare").to_pylist())


@pytest.mark.parametrize("last", ["aggregated", "plain"])
def test_events_a_second_consumer_commits_meanwhile_reach_the_offline_copy_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        last: str) -> None:
    """B checks which of its messages are applied, then A (which took two of them over)
    commits those two before B's transaction: B's files must drop them."""
    table, messages, repo, first, second, a = _takeover(tmp_path, monkeypatch, last)
    try:
        second.process(messages)
        assert (first.counters.events, second.counters.events) == (2, 2)
    finally:
        a.close()
        second.store.close()
    _offline_once(repo, table)


@pytest.mark.parametrize("last", ["aggregated", "plain"])
def test_a_consumer_dying_after_such_a_commit_leaves_files_that_match_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        last: str) -> None:
    """As above, but B dies once its commit is confirmed, before it makes its files
    visible: its pending files already left A's two events out (they were rewritten before
    the commit), so B restarted publishes them and every event is offline once."""
    table, messages, repo, _, second, a = _takeover(tmp_path, monkeypatch, last)
    try:
        second._commit(stream_feeds(second.store)[0], messages)  # not finished: B dies
        second.store.online.settle()
    finally:
        a.close()
        second.store.close()
    with hw.FeatureStore(repo) as restarted:
        recovery = Consumer(restarted, stream_feeds(restarted), _NoReader(),
                            consumer="B").recover()
    assert recovery.published == 1
    _offline_once(repo, table)


class _Batches:
    """A reader that allows reading ahead and hands out the given batches, recording the
    count of each read and the ids acknowledged."""

    reads_ahead = True

    def __init__(self, batches: list[list[Message]]) -> None:
        self.batches = batches
        self.reads: list[int] = []
        self.acked: list[str] = []

    def read(self, count: int, wait_ms: int) -> list[Message]:
        self.reads.append(count)
        return self.batches.pop(0)[:count] if self.batches else []

    def ack(self, messages: list[Message]) -> None:
        self.acked += [m.id for m in messages]

    def dead_letter(self, refused: object) -> None:
        return None

    def close(self) -> None:
        return None


def test_full_batches_are_followed_by_a_read_ahead_and_applied_in_order(
        tmp_path: Path) -> None:
    from datetime import UTC, datetime

    table = events(9, end=datetime(2024, 5, 1, 10, 0, tzinfo=UTC), drivers=3)
    messages = [Message("trips", f"1-{i}", data=p) for i, p in enumerate(payloads(table))]
    repo = make_repo(tmp_path / "repo", "trips")
    with hw.FeatureStore(repo) as store:
        reader = _Batches([messages[0:3], messages[3:6], messages[6:8], messages[8:]])
        runtime = Consumer(store, stream_feeds(store), reader, consumer="c", batch_size=3)
        counters = runtime.run(max_events=9)
    # a full batch is followed by a read while it is applied; the short one is not, and
    # the last read asks only for what max_events leaves
    assert reader.reads == [3, 3, 3, 1]
    assert reader.acked == [m.id for m in messages]
    assert (counters.events, counters.batches) == (9, 4)


def test_the_collector_is_paced_while_the_consumer_runs(tmp_path: Path) -> None:
    import gc
    from datetime import UTC, datetime

    from headwater.streaming.collector import YOUNG_THRESHOLD

    table = events(4, end=datetime(2024, 5, 1, 10, 0, tzinfo=UTC), drivers=2)
    messages = [Message("trips", f"1-{i}", data=p) for i, p in enumerate(payloads(table))]
    repo = make_repo(tmp_path / "repo", "trips")
    before = gc.get_threshold()
    seen: list[int] = []
    with hw.FeatureStore(repo) as store:
        runtime = Consumer(store, stream_feeds(store), _Batches([messages[:2], messages[2:]]),
                           consumer="c", batch_size=2)
        runtime.run(max_events=4, on_batch=lambda _: seen.append(gc.get_threshold()[0]))
    assert seen == [max(before[0], YOUNG_THRESHOLD)] * 2
    assert gc.get_threshold() == before


def test_first_deliveries_already_applied_change_nothing(redis_url: str,
                                                        tmp_path: Path) -> None:
    """A batch of first deliveries skips the look-up of applied events; when they were
    applied after all (here: the consumer group was recreated and the stream is read again
    from the start), the online transaction finds them marked and the offline copy drops
    them."""
    import redis

    topic = unique_topic()
    repo = make_repo(tmp_path / "repo", topic, stream_yaml("redis", redis_url, batch_size=300))
    published = events(400, seed=9)
    with publisher("redis", redis_url, topic) as pub:
        pub.publish(payloads(published))
        first = consume(repo)
        client = redis.Redis.from_url(redis_url)
        try:
            with hw.FeatureStore(repo) as store:
                group = store.settings.stream.group
            client.xgroup_destroy(topic, group)
            client.xgroup_create(topic, group, id="0")
        finally:
            client.close()
        again = consume(repo)
    assert (first.events, first.duplicates) == (400, 0)
    assert (again.events, again.duplicates) == (0, 400)
    check_online(repo, published)
    check_offline(repo, published)  # every event once, not twice


def test_fewer_events_taken_on_a_later_run_of_the_commit_refuse_it(tmp_path: Path) -> None:
    """A commit run again finds more events taken and its files drop them too; finding
    fewer (a mark lost) raises before anything is committed, the files unchanged."""
    from datetime import UTC, datetime

    import pyarrow.parquet as pq

    from headwater.errors import StoreUnavailableError
    from headwater.streaming.consumer import _BatchFiles
    from headwater.streaming.event_files import SeqClock, plan_files, write_files
    from headwater.streaming.parquet_append import PushFolder

    ts = pa.array([datetime(2024, 5, 1, h, tzinfo=UTC) for h in range(4)],
                  pa.timestamp("us", "UTC"))
    offline = pa.table({"ts": ts, "v": [0, 1, 2, 3]})
    files, _ = plan_files(ts, SeqClock())
    batch = _BatchFiles(offline, files, ["i0", "i1", "i2", "i3"])
    batch.paths = write_files(PushFolder(tmp_path, None), offline, files, pending="B")
    batch.drop(frozenset({"i0"}))
    batch.drop(frozenset({"i0", "i2"}))
    (path,) = batch.paths
    assert pq.read_table(path).column("v").to_pylist() == [1, 3]
    with pytest.raises(StoreUnavailableError, match="delivered again"):
        batch.drop(frozenset({"i2"}))
    assert pq.read_table(path).column("v").to_pylist() == [1, 3]
