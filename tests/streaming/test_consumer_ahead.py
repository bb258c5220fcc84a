"""A batch made ready ahead (decoded, planned, summarised on the read-ahead thread) is
applied as if made in its turn: its ``__hw_seq`` follows the commit order, so offline and
online keep the same row of two events with the same time."""

from __future__ import annotations

import json
import threading
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
