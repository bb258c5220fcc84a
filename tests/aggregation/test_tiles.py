"""Tile records: deterministic bytes, merging, pruning, generations and reads at t."""

from __future__ import annotations

from datetime import timedelta

import pytest

from headwater.aggregation.base import FUNCTIONS
from headwater.aggregation.grouped import EntityPartial
from headwater.aggregation.tiles import (
    TileRecord,
    decode_tiles,
    encode_tiles,
    merge_into,
    values_at,
)
from headwater.definitions.aggregation import Aggregation
from headwater.errors import DataError
from headwater.online.encoding import decode_event

M = 60_000_000  # a minute in microseconds
SUM = Aggregation("x", "sum", timedelta(minutes=10), timedelta(minutes=5))
COUNT = Aggregation("x", "count", timedelta(minutes=2), timedelta(minutes=1))
AGGS = (SUM, COUNT)


def partial(latest_min: int, sums: dict[int, int], counts: dict[int, int],
            created: int | None = None) -> EntityPartial:
    return EntityPartial(latest_min * M, created,
                         ({s * M: v for s, v in sums.items()},
                          {s * M: v for s, v in counts.items()}))


def test_records_round_trip_with_the_header_first() -> None:
    record = merge_into(None, partial(12, {10: 5, 5: 1}, {12: 2, 11: 1}), AGGS, 3)
    assert record is not None
    data = encode_tiles(record)
    assert decode_event(data) == (12 * M, 3)
    assert decode_tiles(data, 2) == record
    assert list(record.tiles[0]) in ([5 * M, 10 * M], [10 * M, 5 * M])
    # the same tiles in another insertion order give the same bytes
    shuffled = TileRecord(3, 12 * M, None, tuple(dict(reversed(t.items()))
                                                 for t in record.tiles))
    assert encode_tiles(shuffled) == data


def test_merge_adds_tile_states_and_prunes_what_no_read_needs() -> None:
    first = merge_into(None, partial(12, {10: 5, 5: 1}, {12: 2, 10: 1}), AGGS, 1)
    # later events: the latest is now minute 20, so sum keeps tiles from floor_5(20-10)=10,
    # count from floor_1(20-2)=18; the tile at minute 10 of sum gets 7 more
    second = merge_into(first, partial(20, {10: 7, 20: 1}, {20: 4}), AGGS, 1)
    assert second is not None and second.latest_us == 20 * M
    sums = {s // M: FUNCTIONS["sum"].decode(v) for s, v in second.tiles[0].items()}
    counts = {s // M: FUNCTIONS["count"].decode(v) for s, v in second.tiles[1].items()}
    assert sums == {10: 12, 20: 1}
    assert counts == {20: 4}


def test_late_partials_beyond_the_allowed_lateness_are_dropped() -> None:
    first = merge_into(None, partial(30, {30: 1}, {30: 1}), AGGS, 1)
    # minute 15 is before floor_5(30 - 10) = 20 for sum: dropped; minute 28 counts for both
    late = merge_into(first, partial(28, {15: 100, 25: 2}, {28: 5}), AGGS, 1)
    assert late is not None and late.latest_us == 30 * M
    assert {s // M for s in late.tiles[0]} == {25, 30}
    assert values_at(late, AGGS, [0, 1], 30 * M + 1) == [3, 6]


def test_generations_older_are_rebuilt_and_newer_never_overwritten() -> None:
    old = merge_into(None, partial(12, {10: 5}, {12: 1}), AGGS, 1)
    rebuilt = merge_into(old, partial(3, {0: 1}, {3: 1}), AGGS, 2)
    assert rebuilt is not None and rebuilt.generation == 2
    assert values_at(rebuilt, AGGS, [0, 1], 4 * M) == [1, 1]
    assert merge_into(rebuilt, partial(50, {50: 9}, {50: 9}), AGGS, 1) is None


def test_created_time_orders_equal_event_times_in_the_header() -> None:
    one = merge_into(None, partial(12, {10: 1}, {12: 1}, created=5), AGGS, 1)
    two = merge_into(one, partial(12, {10: 1}, {12: 1}, created=None), AGGS, 1)
    assert two is not None and two.created_us == 5
    three = merge_into(two, partial(12, {10: 1}, {12: 1}, created=7), AGGS, 1)
    assert three is not None and three.created_us == 7


def test_values_at_read_the_window_and_never_a_tile_starting_at_t() -> None:
    record = merge_into(None, partial(14, {0: 1, 5: 2, 10: 4}, {12: 1, 13: 2, 14: 4}), AGGS, 1)
    assert record is not None
    # t = 14:30: sum merges tiles 0..10 (floor_5(4:30) = 0), count tiles 12..14
    assert values_at(record, AGGS, [0, 1], 14 * M + 30_000_000) == [7, 7]
    # t exactly on a boundary: the tile starting at t holds only events at or after t
    assert values_at(record, AGGS, [0, 1], 10 * M) == [3, 0]
    assert values_at(record, AGGS, [1, 0], 14 * M) == [3, 7]  # in the order asked
    assert values_at(record, AGGS, [0, 1], 40 * M) == [0, 0]  # everything out of window


def test_corrupt_records_name_the_view_and_the_fix() -> None:
    record = merge_into(None, partial(1, {0: 1}, {1: 1}), AGGS, 1)
    assert record is not None
    data = encode_tiles(record)
    with pytest.raises(DataError, match=r"'card_txn'.*materialize the view again"):
        decode_tiles(data, 3, "card_txn")
    with pytest.raises(DataError, match="corrupt"):
        decode_tiles(data[:22] + b"\xc1", 2, "card_txn")
