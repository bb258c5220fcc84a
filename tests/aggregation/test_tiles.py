"""Tile records: deterministic bytes, merging, pruning, generations and reads at t."""

from __future__ import annotations

from datetime import timedelta

import pytest

from headwater.aggregation.base import FUNCTIONS
from headwater.aggregation.grouped import EntityPartial
from headwater.aggregation.tiles import (
    decode_tiles,
    encode_tiles,
    followed_by,
    merge_into,
    split,
    tiles_of,
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
    return EntityPartial.of(latest_min * M, created,
                            ({s * M: v for s, v in sums.items()},
                             {s * M: v for s, v in counts.items()}), AGGS)


def test_records_round_trip_with_the_header_first() -> None:
    record = merge_into(None, partial(12, {10: 5, 5: 1}, {12: 2, 11: 1}), AGGS, 3)
    assert record is not None
    data = encode_tiles(record)
    assert decode_event(data) == (12 * M, 3)
    assert decode_tiles(data, 2) == record
    assert list(tiles_of(record, AGGS, 0)) == [5 * M, 10 * M]  # kept in start order
    # the same tiles in another insertion order give the same bytes
    shuffled = merge_into(None, partial(12, {5: 1, 10: 5}, {11: 1, 12: 2}), AGGS, 3)
    assert shuffled is not None and encode_tiles(shuffled) == data
    # and so do the same tiles merged in two batches, the later one first
    later = merge_into(None, partial(12, {10: 5}, {12: 2}), AGGS, 3)
    both = merge_into(later, partial(11, {5: 1}, {11: 1}), AGGS, 3)
    assert both is not None and encode_tiles(both) == data


def test_aggregations_of_one_window_and_tile_size_share_one_lane() -> None:
    mean = Aggregation("y", "mean", timedelta(minutes=10), timedelta(minutes=5))
    aggs = (SUM, COUNT, mean)
    record = merge_into(None, EntityPartial.of(12 * M, None, (
        {5 * M: 1, 10 * M: 5}, {12 * M: 2}, {5 * M: FUNCTIONS["mean"].init(),
                                             10 * M: FUNCTIONS["mean"].init()}), aggs), aggs, 1)
    assert record is not None and len(record.lanes) == 2
    assert record.lanes[0].starts == [5 * M, 10 * M] and len(record.lanes[0].states) == 2
    assert decode_tiles(encode_tiles(record), 3) == record
    # a tile one aggregation of a lane lacks holds that aggregation's empty state
    more = merge_into(record, EntityPartial.of(13 * M, None, ({}, {13 * M: 1}, {
        10 * M: FUNCTIONS["mean"].update(FUNCTIONS["mean"].init(), [4.0])}), aggs), aggs, 1)
    assert more is not None
    assert values_at(more, aggs, [0, 2, 1], 13 * M + 1) == [6, 4.0, 3]


def test_merge_adds_tile_states_and_prunes_what_no_read_needs() -> None:
    first = merge_into(None, partial(12, {10: 5, 5: 1}, {12: 2, 10: 1}), AGGS, 1)
    # later events: the latest is now minute 20, so sum keeps tiles from floor_5(20-10)=10,
    # count from floor_1(20-2)=18; the tile at minute 10 of sum gets 7 more
    second = merge_into(first, partial(20, {10: 7, 20: 1}, {20: 4}), AGGS, 1)
    assert second is not None and second.latest_us == 20 * M
    sums = {s // M: FUNCTIONS["sum"].decode(v) for s, v in tiles_of(second, AGGS, 0).items()}
    counts = {s // M: FUNCTIONS["count"].decode(v)
              for s, v in tiles_of(second, AGGS, 1).items()}
    assert first is not None and set(tiles_of(first, AGGS, 0)) == {5 * M, 10 * M}  # unchanged
    assert sums == {10: 12, 20: 1}
    assert counts == {20: 4}


def test_late_partials_beyond_the_allowed_lateness_are_dropped() -> None:
    first = merge_into(None, partial(30, {30: 1}, {30: 1}), AGGS, 1)
    # minute 15 is before floor_5(30 - 10) = 20 for sum: dropped; minute 28 counts for both
    late = merge_into(first, partial(28, {15: 100, 25: 2}, {28: 5}), AGGS, 1)
    assert late is not None and late.latest_us == 30 * M
    assert {s // M for s in tiles_of(late, AGGS, 0)} == {25, 30}
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


def test_split_and_followed_by_join_stored_later_tiles_and_prune() -> None:
    offline = merge_into(None, partial(12, {5: 1, 10: 5}, {11: 1, 12: 2}), AGGS, 1)
    streamed = merge_into(None, partial(21, {15: 3, 20: 4}, {20: 1, 21: 1}), AGGS, 1)
    assert offline is not None and streamed is not None
    later = split(streamed, AGGS, 20 * M, after=True)
    assert {s // M for s in tiles_of(later, AGGS, 0)} == {20}
    # a split inside a tile cuts at that tile's end, per tile size (sum 5 min, count 1 min)
    inside = split(streamed, AGGS, 17 * M + 1, after=True)
    assert {s // M for s in tiles_of(inside, AGGS, 0)} == {20}
    assert {s // M for s in tiles_of(inside, AGGS, 1)} == {20, 21}
    before = split(offline, AGGS, 11 * M + 1, after=False)
    assert {s // M for s in tiles_of(before, AGGS, 0)} == {5, 10}
    assert {s // M for s in tiles_of(before, AGGS, 1)} == {11}
    joined = followed_by(offline, later, AGGS)
    assert joined.latest_us == 21 * M
    # pruned to minute 21: sum keeps tiles from floor_5(11) = 10, count from 19
    assert {s // M for s in tiles_of(joined, AGGS, 0)} == {10, 20}
    assert {s // M for s in tiles_of(joined, AGGS, 1)} == {20, 21}
    assert values_at(joined, AGGS, [0, 1], 21 * M + 1) == [9, 2]


def test_corrupt_records_name_the_view_and_the_fix() -> None:
    record = merge_into(None, partial(1, {0: 1}, {1: 1}), AGGS, 1)
    assert record is not None
    data = encode_tiles(record)
    with pytest.raises(DataError, match=r"'card_txn'.*materialize the view again"):
        decode_tiles(data, 3, "card_txn")
    with pytest.raises(DataError, match="corrupt"):
        decode_tiles(data[:22] + b"\xc1", 2, "card_txn")


@pytest.mark.parametrize("states", [[], [b"\x01"], [b"\x01", b"\x02\x03"]])
def test_lanes_of_any_width_round_trip_even_when_pruned_empty(states: list[bytes]) -> None:
    # a lane whose tiles were all pruned (no event within its window any more) sits next
    # to a lane of fixed-width and one of varying-width states
    from headwater.aggregation.tiles import LaneTiles, TileRecord

    starts = [M * i for i in range(len(states))]
    record = TileRecord(4, 12 * M, None, (
        LaneTiles([], ([], [])),
        LaneTiles(starts, (list(states),)),
        LaneTiles([M, 2 * M], ([b"ab", b"cd"],)),
    ))
    assert decode_tiles(encode_tiles(record), 4) == record
