"""Merging a batch into many tile records at once gives, byte for byte, what merging each
record alone gives (``merge_into`` and ``encode_tiles``), from any stored records: none, the
current layout, the earlier msgpack layout, another generation; with late tiles, tiles held
twice, states of varying width and created times."""

from __future__ import annotations

from datetime import timedelta

import msgpack
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import headwater as hw
from headwater.aggregation.grouped import Partials, partials
from headwater.aggregation.merge_batch import SKIPPED, merge_records
from headwater.aggregation.tiles import (
    FORMAT,
    TileRecord,
    decode_tiles,
    encode_tiles,
    merge_into,
)
from headwater.errors import DataError
from headwater.online.encoding import decode_header, encode_header

M = 60_000_000
CARD = hw.Entity("card", join_keys=["card_id"])
AGGS = {
    "sum5": hw.Aggregation("amount", "sum", timedelta(minutes=10), timedelta(minutes=5)),
    "count5": hw.Aggregation("amount", "count", timedelta(minutes=10), timedelta(minutes=5)),
    "max5": hw.Aggregation("amount", "max", timedelta(minutes=10), timedelta(minutes=5)),
    "mean1": hw.Aggregation("amount", "mean", timedelta(minutes=3), timedelta(minutes=1)),
    "count1": hw.Aggregation("amount", "count", timedelta(minutes=3), timedelta(minutes=1)),
    "last1": hw.Aggregation("amount", "last", timedelta(minutes=3), timedelta(minutes=1)),
    "distinct2": hw.Aggregation("amount", "count_distinct", timedelta(minutes=4),
                                timedelta(minutes=2)),
    "min1h": hw.Aggregation("amount", "min", timedelta(hours=1), timedelta(minutes=5)),
}


def view(names: list[str]) -> hw.FeatureView:
    aggs = [AGGS[n] for n in names]
    return hw.FeatureView("txn", entities=[CARD], source=hw.FileSource("x.parquet", "ts"),
                          schema=[hw.Field("amount", hw.Float64)],
                          aggregations=[hw.Aggregation(a.column, a.function, a.window,
                                                       a.granularity, name=n)
                                        for n, a in zip(names, aggs, strict=True)])


def events(rows: list[tuple[int, int, int | None, float | None]], seq0: int) -> pa.Table:
    n = len(rows)
    return pa.table({
        "card_id": pa.array([r[0] for r in rows], pa.int64()),
        "__hw_ts": pa.array([r[1] * M // 4 for r in rows], pa.int64()).cast(
            pa.timestamp("us", tz="UTC")),
        "__hw_created": pa.array([r[2] for r in rows], pa.int64()).cast(
            pa.timestamp("us", tz="UTC")),
        "__hw_seq": pa.array(range(seq0, seq0 + n), pa.int64()),
        "amount": pa.array([r[3] for r in rows], pa.float64()),
    })


def one_by_one(v: hw.FeatureView, generation: int, part: Partials,
               current: dict[bytes, bytes | None]) -> tuple[dict[bytes, bytes], list[int]]:
    """The per-record merge, as ``apply_events`` did it before the batch merge."""
    aggs = v.aggregations
    records: dict[bytes, bytes] = {}
    latest = []
    for key in part.keys:
        data = current.get(key)
        if data is not None and decode_header(data)[0] != generation:
            latest.append(int(SKIPPED))
            continue
        stored = None if data is None else decode_tiles(data, len(aggs))
        merged = merge_into(stored, part.by_key[key], aggs, generation)
        assert merged is not None
        latest.append(merged.latest_us)
        records[key] = encode_tiles(merged)
    return records, latest


def msgpack_layout(record: TileRecord) -> bytes:
    """A record in the earlier layout: a msgpack array of lanes after the header."""
    payload = [[lane.starts, *lane.states] for lane in record.lanes]
    return (encode_header(record.latest_us, record.created_us, record.generation)
            + bytes(msgpack.packb(payload, use_bin_type=True)))


amounts = st.one_of(st.none(), st.integers(-40, 40).map(lambda k: k / 4))
rows = st.lists(st.tuples(st.integers(1, 5), st.integers(0, 200),
                          st.one_of(st.none(), st.integers(0, 3)), amounts), max_size=30)


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.sampled_from(sorted(AGGS)), min_size=1, max_size=5, unique=True),
       batches=st.lists(rows, min_size=1, max_size=4), data=st.data())
def test_batch_merge_equals_merging_each_record(names: list[str],
                                                batches: list[list[tuple[int, int, int | None,
                                                                         float | None]]],
                                                data: st.DataObject) -> None:
    v = view(names)
    aggs = v.aggregations
    current: dict[bytes, bytes | None] = {}
    seq = 0
    for batch in batches:
        part = partials(v, events(batch, seq))
        seq += len(batch)
        # some stored records in the earlier layout, some of another generation
        for key in list(current):
            stored = current[key]
            assert stored is not None
            how = data.draw(st.sampled_from(["keep", "keep", "msgpack", "older", "newer"]))
            if how == "msgpack":
                current[key] = msgpack_layout(decode_tiles(stored, len(aggs)))
            elif how in ("older", "newer"):
                record = decode_tiles(stored, len(aggs))
                current[key] = encode_tiles(TileRecord(
                    2 if how == "older" else 4, record.latest_us, record.created_us,
                    record.lanes))
        got, latest = merge_records(aggs, 3, part, current)
        want, want_latest = one_by_one(v, 3, part, current)
        assert got == want
        assert latest.tolist() == want_latest
        for data_ in got.values():
            assert data_[20:22] == FORMAT  # every write uses the current layout
        current.update(got)


def test_a_batch_merges_a_tile_it_shares_with_the_stored_record() -> None:
    v = view(["sum5", "count5", "mean1"])
    first = partials(v, events([(1, 0, None, 1.0), (1, 4, None, 2.0)], 0))
    records, _ = merge_records(v.aggregations, 1, first, {})
    second = partials(v, events([(1, 5, None, 4.0), (1, 30, None, 8.0)], 2))
    got, latest = merge_records(v.aggregations, 1, second, dict(records))
    want, want_latest = one_by_one(v, 1, second, dict(records))
    assert got == want and latest.tolist() == want_latest == [30 * M // 4]
    lanes = decode_tiles(next(iter(got.values())), 3).lanes
    assert lanes[0].starts == [0, 5 * M]  # minute 1.25 shares the first 5-minute tile
    assert np.frombuffer(lanes[0].states[1][0], "<i8").tolist() == [3]


def test_a_merged_state_of_another_width_is_merged_alone() -> None:
    # each batch's sum fits int64 (9 bytes, fixed width); their sum does not ('I', wider)
    v = hw.FeatureView("txn", entities=[CARD], source=hw.FileSource("x.parquet", "ts"),
                       schema=[hw.Field("amount", hw.Int64)], aggregations=[
                           hw.Aggregation("amount", "sum", timedelta(minutes=10),
                                          timedelta(minutes=5))])
    big = 2**62

    def batch(cards: list[int], minute: int, seq: int) -> Partials:
        return partials(v, pa.table({
            "card_id": pa.array(cards, pa.int64()),
            "__hw_ts": pa.array([minute * M] * len(cards), pa.int64()).cast(
                pa.timestamp("us", tz="UTC")),
            "__hw_created": pa.nulls(len(cards), pa.timestamp("us", tz="UTC")),
            "__hw_seq": pa.array(range(seq, seq + len(cards)), pa.int64()),
            "amount": pa.array([big] * len(cards), pa.int64()),
        }))

    records, _ = merge_records(v.aggregations, 1, batch([1, 2], 0, 0), {})
    second = batch([1, 2, 3], 1, 2)
    got, latest = merge_records(v.aggregations, 1, second, dict(records))
    want, want_latest = one_by_one(v, 1, second, dict(records))
    assert got == want and latest.tolist() == want_latest
    sums = [decode_tiles(data, 1).lanes[0].states[0][0] for data in got.values()]
    assert sorted(s[:1] for s in sums) == [b"I", b"I", b"i"]  # cards 1 and 2 overflow


def test_a_corrupt_record_is_named_as_merging_it_alone_names_it() -> None:
    v = view(["sum5", "mean1"])
    records, _ = merge_records(v.aggregations, 1, partials(v, events([(1, 0, None, 1.0)], 0)),
                               {})
    key, data = next(iter(records.items()))
    with pytest.raises(DataError, match=r"'txn'.*corrupt"):
        merge_records(v.aggregations, 1, partials(v, events([(1, 1, None, 2.0)], 1)),
                      {key: data[:-3]}, "txn")


@settings(max_examples=300, deadline=None)
@given(old=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 6)), max_size=30),
       new=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 6)), max_size=30))
def test_merge_positions_equal_a_stable_sort_of_both_sides(
        old: list[tuple[int, int]], new: list[tuple[int, int]]) -> None:
    from headwater.aggregation.merge_batch import _merge_positions

    h = 60_000_000
    old, new = sorted(old), sorted(new)
    at = _merge_positions(np.array([e for e, _ in old], dtype=np.intp),
                          np.array([t * h for _, t in old], dtype=np.int64),
                          np.array([e for e, _ in new], dtype=np.intp),
                          np.array([t * h for _, t in new], dtype=np.int64), h)
    assert at is not None
    # brute force: sort the union stably, the stored rows first on a tie
    union = sorted([(e, t, 0, i) for i, (e, t) in enumerate(old)]
                   + [(e, t, 1, i) for i, (e, t) in enumerate(new)])
    want = [position for position, row in enumerate(union) if row[2] == 1]
    assert at.tolist() == want


def test_merge_positions_refuse_what_they_cannot_merge() -> None:
    from headwater.aggregation.merge_batch import _merge_positions

    h = 60
    ints = np.array
    # a stored record whose tiles are out of order, a batch out of order, a start off the
    # grid, and keys past an int64: the caller sorts the union instead
    assert _merge_positions(ints([0, 0]), ints([120, 60]), ints([0]), ints([60]), h) is None
    empty = np.zeros(0, dtype=np.int64)
    assert _merge_positions(ints([0, 0]), ints([120, 60]), empty, empty, h) is None
    assert _merge_positions(ints([0]), ints([60]), ints([1, 0]), ints([60, 60]), h) is None
    assert _merge_positions(ints([0]), ints([60]), ints([0]), ints([90]), h) is None
    assert _merge_positions(ints([0]), ints([0]), ints([2**40]), ints([2**62]), 1) is None
    at = _merge_positions(ints([0, 1]), ints([60, 60]), ints([0]), ints([60]), h)
    assert at is not None and at.tolist() == [1]
