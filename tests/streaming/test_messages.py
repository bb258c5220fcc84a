"""Decoding stream messages: JSON objects and flat fields, malformed messages isolated."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import headwater as hw
from headwater.streaming.ingest import Feed, resolve_feed
from headwater.streaming.messages import Message, decode
from tests.streaming.stream_repo import make_repo

AT = datetime(2024, 5, 1, 12, tzinfo=UTC)
GOOD = b'{"driver_id": 1001, "ts": "2024-05-01T12:00:00Z", "fare": 10.5, "rating": 4}'


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[Feed]:
    with hw.FeatureStore(make_repo(tmp_path / "repo", "trips")) as store:
        feed = resolve_feed(store, "trips")
        assert feed is not None
        yield feed


def msg(i: int, data: bytes | None = None, **fields: str) -> Message:
    return Message("trips", f"{i}-0", data=data,
                   fields={k.encode(): v.encode() for k, v in fields.items()} or None)


def test_json_messages_become_typed_events_in_stream_order(feed: Feed) -> None:
    second = b'{"driver_id": 1002, "ts": "2024-05-01T12:00:01", "fare": 3, "rating": null}'
    decoded = decode(feed, [msg(1, GOOD), msg(2, second)], None, offline=True)
    assert decoded.refused == []
    assert [m.id for m in decoded.messages] == ["1-0", "2-0"]
    assert decoded.events is not None and decoded.offline is not None
    rows = decoded.offline.to_pylist()
    assert rows[0] == {"driver_id": 1001, "ts": AT, "fare": 10.5, "rating": 4}
    assert rows[1]["fare"] == 3.0 and rows[1]["rating"] is None  # naive time is UTC
    assert rows[1]["ts"] == AT.replace(second=1)


def test_flat_fields_are_typed_by_the_view_schemas(feed: Feed) -> None:
    decoded = decode(feed, [msg(1, driver_id="1001", ts="2024-05-01T12:00:00Z", fare="10.5",
                                rating="4")], None, offline=True)
    assert decoded.refused == []
    assert decoded.offline is not None
    assert decoded.offline.to_pylist() == [
        {"driver_id": 1001, "ts": AT, "fare": 10.5, "rating": 4}]


@pytest.mark.parametrize(("bad", "reason"), [
    (b'{"driver_id": "x", "ts": "2024-05-01T12:00:00Z", "fare": 1, "rating": 1}',
     "driver_id"),
    (b'{"driver_id": 1, "ts": "yesterday", "fare": 1, "rating": 1}', "ts"),
    (b'{"driver_id": 1, "ts": "2024-05-01T12:00:00Z", "fare": "cheap", "rating": 1}',
     "fare"),
    (b'{"driver_id": 1, "fare": 1, "rating": 1}', "ts"),
    (b'{"driver_id": 1, "ts": "2024-05-01T12:00:00Z", "fare": 1, "rating": 1, "x": 1}',
     "unknown column"),
    (b'{"driver_id": 1, "ts": "2099-05-01T12:00:00Z", "fare": 1, "rating": 1}',
     "after the current time"),
    (b"not json", "not a valid event"),
    (b'[1, 2]', "not a valid event"),
    (b'{"driver_id": 1}{"driver_id": 2}', "one JSON object per message"),
])
def test_each_malformed_message_is_refused_with_its_reason(
        feed: Feed, bad: bytes, reason: str) -> None:
    batch = [msg(1, GOOD), msg(2, bad), msg(3, GOOD.replace(b"1001", b"1003"))]
    decoded = decode(feed, batch, None, offline=True)
    assert [m.id for m, _ in decoded.refused] == ["2-0"]
    assert reason in decoded.refused[0][1]
    assert [m.id for m in decoded.messages] == ["1-0", "3-0"]
    assert decoded.events is not None
    assert decoded.events.column("driver_id").to_pylist() == [1001, 1003]


def test_many_bad_messages_among_good_ones_are_all_found(feed: Feed) -> None:
    batch = [msg(i, GOOD if i % 7 else b"{oops") for i in range(200)]
    decoded = decode(feed, batch, None, offline=True)
    assert sorted(int(m.id.split("-")[0]) for m, _ in decoded.refused) == list(
        range(0, 200, 7))
    assert [m.id for m in decoded.messages] == [f"{i}-0" for i in range(200) if i % 7]


def test_pretty_printed_json_is_one_event(feed: Feed) -> None:
    pretty = GOOD.replace(b", ", b",\n  ")
    decoded = decode(feed, [msg(1, pretty)], None, offline=False)
    assert decoded.refused == [] and decoded.events is not None
    assert decoded.events.num_rows == 1 and decoded.offline is None
