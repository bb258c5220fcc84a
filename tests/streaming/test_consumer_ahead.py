"""A batch made ready ahead (decoded, planned, summarised on the read-ahead thread) is
applied as if made in its turn: its ``__hw_seq`` follows the commit order, so offline and
online keep the same row of two events with the same time."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

import headwater as hw
from headwater.streaming.consumer import Consumer, stream_feeds
from headwater.streaming.messages import Message
from tests.streaming.stream_repo import make_repo

TS = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


class Batches:
    """A stream reader that hands out fixed batches and reads ahead (as Redis does)."""

    reads_ahead = True

    def __init__(self, batches: list[list[Message]]) -> None:
        self.batches = batches

    def read(self, count: int, wait_ms: int) -> list[Message]:
        return self.batches.pop(0) if self.batches else []

    def ack(self, messages: object) -> None:
        pass

    def dead_letter(self, refused: object) -> None:
        raise AssertionError(f"nothing here is malformed: {refused}")

    def close(self) -> None:
        pass


def message(i: int, fare: float, *, fresh: bool) -> Message:
    event = {"driver_id": 7, "ts": TS.isoformat(), "fare": fare, "rating": 5}
    return Message("trips", f"1-{i}", data=json.dumps(event).encode(), fresh=fresh)


def test_a_batch_planned_ahead_of_a_redelivery_is_planned_again_after_it(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "trips")
    with hw.FeatureStore(repo) as store:
        reader = Batches([[message(0, 1.0, fresh=False)], [message(1, 2.0, fresh=True)]])
        consumer = Consumer(store, stream_feeds(store), reader, consumer="c", batch_size=1)
        planned = threading.Event()
        read_ahead = consumer._read_ahead

        def read_and_tell(count: int, wait_ms: int) -> Any:
            made = read_ahead(count, wait_ms)
            planned.set()
            return made

        look_up = store.online.markers_present

        def after_the_next_batch_is_planned(scope: str, ids: Any) -> set[str]:
            # the redelivered batch looks its marks up (on the main thread) only once the
            # fresh batch after it was read and planned ahead
            assert planned.wait(30), "the next batch was never read ahead"
            return look_up(scope, ids)

        consumer._read_ahead = read_and_tell  # type: ignore[method-assign]
        store.online.markers_present = after_the_next_batch_is_planned  # type: ignore[method-assign]
        consumer.run(max_events=2)
        at = TS + timedelta(seconds=1)
        online = store.get_online_features(["driver_last_trip:fare"], [{"driver_id": 7}],
                                           now=at).to_dict()["fare"]
        offline = store.get_historical_features(
            pa.table({"driver_id": [7], "event_timestamp": pa.array(
                [at], pa.timestamp("us", "UTC"))}),
            ["driver_last_trip:fare"]).to_arrow().column("fare").to_pylist()
    # both keep the event applied last (a tie on event and created time: the later write)
    assert online == offline == [2.0]


def test_a_consumer_catching_up_defers_each_commit_and_settles_it_exactly_once(
        redis_url: str, tmp_path: Path) -> None:
    """Over Redis (streams and online store), full batches are read ahead and their online
    commits deferred: each is confirmed while the next is merged, and the result is exact.
    A second consumer of the same group, changing the same drivers at once in another
    process, makes some deferred commits fail their checks and run again."""
    import os
    import subprocess
    import sys

    from headwater.streaming.consumer import open_reader
    from tests.streaming.stream_repo import events, payloads, publisher, stream_yaml, unique_topic
    from tests.streaming.test_consumer import check_offline, check_online, consume

    topic = unique_topic()
    online = f"online: {{type: redis, url: '{redis_url}'}}\n"
    repo = make_repo(tmp_path / "repo", topic, stream_yaml("redis", redis_url, batch_size=200),
                     online, project=f"deferred_{uuid.uuid4().hex[:12]}")
    published = events(4_000, seed=21, drivers=5)  # few drivers: the consumers collide
    deferred: list[bool] = []
    with publisher("redis", redis_url, topic) as pub:
        other = subprocess.Popen(
            [sys.executable, "-m", "headwater.cli.main", "stream", "--repo", str(repo),
             "--consumer", "other", "--idle-exit", "3"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            assert other.stderr is not None
            for line in other.stderr:  # it prints this line once it is about to read
                if line.startswith("consuming"):
                    break
            with hw.FeatureStore(repo) as store:
                update = store.online.update

                def watched(*args: Any, **kwargs: Any) -> int:
                    deferred.append(bool(kwargs.get("defer")))
                    return update(*args, **kwargs)

                store.online.update = watched  # type: ignore[method-assign]
                feeds = stream_feeds(store)
                reader = open_reader(store.settings.stream, [f.topic for f in feeds], "mine")
                try:
                    runtime = Consumer(store, feeds, reader, consumer="mine", batch_size=200,
                                       block_ms=200)
                    results: list[Any] = []

                    def consume_here() -> None:
                        try:
                            results.append(runtime.run(idle_exit=3))
                        except BaseException as exc:  # noqa: BLE001  raised below, here
                            results.append(exc)

                    running = threading.Thread(target=consume_here)
                    running.start()  # both consumers wait for the events now
                    pub.publish(payloads(published))
                    running.join(timeout=120)
                    assert not running.is_alive() and results, "the consumer did not finish"
                    if isinstance(results[0], BaseException):
                        raise results[0]
                    mine = results[0]
                finally:
                    reader.close()
                assert store.online.pending() == 0
            out, err = other.communicate(timeout=120)
        finally:
            if other.poll() is None:
                other.kill()
    assert other.returncode == 0, err
    theirs = int(out.strip().splitlines()[-1].split(" events")[0].replace(",", ""))
    assert mine.events + theirs == 4_000  # each event applied by exactly one of them
    assert theirs > 0 and mine.events > 0  # both took part
    assert any(deferred), "no commit was deferred: the read-ahead path did not run"
    check_online(repo, published)
    check_offline(repo, published)
    assert consume(repo).events == 0  # all acknowledged


def test_only_the_last_views_commit_is_deferred(tmp_path: Path, redis_url: str) -> None:
    """A feed of two aggregated views: the first view's update commits before the last's
    is sent deferred, so a consumer that dies before settling cannot leave the first view
    without events the last view's marks say are applied."""
    from tests.streaming.stream_repo import DRIVER, definitions, events, payloads
    from tests.streaming.test_consumer import _NoReader

    online = f"online: {{type: redis, url: '{redis_url}'}}\n"
    repo = make_repo(tmp_path / "repo", "trips", "", online,
                     project=f"two_views_{uuid.uuid4().hex[:12]}")
    _, aggregated, latest = definitions("trips")
    longer = hw.FeatureView("driver_trips_2h", entities=[DRIVER], source=aggregated.source,
                            aggregations=[hw.Aggregation("fare", "sum", timedelta(hours=2),
                                                         name="fare_sum_2h")])
    table = events(6, end=datetime(2024, 5, 1, 10, 0, tzinfo=UTC), drivers=2)
    messages = [Message("trips", f"1-{i}", data=p) for i, p in enumerate(payloads(table))]
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, aggregated, latest, longer])
        calls: list[tuple[str, bool]] = []
        update = store.online.update

        def watched(view: str, *args: Any, **kwargs: Any) -> int:
            calls.append((view, bool(kwargs.get("defer"))))
            return update(view, *args, **kwargs)

        store.online.update = watched  # type: ignore[method-assign]
        (feed,) = stream_feeds(store)
        finish = Consumer(store, [feed], _NoReader(), consumer="c1")._commit(
            feed, messages, defer=True)
        assert [view for view, _ in calls if view != "driver_last_trip"] == [
            "driver_trips", "driver_trips_2h"]
        assert dict(calls)["driver_trips"] is False and dict(calls)["driver_trips_2h"] is True
        assert store.online.pending() == 1
        store.online.settle()
        finish()
