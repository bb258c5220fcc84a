"""Grouped updates equal one ``update`` per group, for every function; partials of an events
table equal a brute-force grouping of its rows by (entity, tile)."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import headwater as hw
from headwater.aggregation.base import FUNCTIONS
from headwater.aggregation.batch import Order
from headwater.aggregation.grouped import combine, partials
from headwater.errors import DataError
from headwater.online.encoding import encode_key

NUMERIC = ["count", "sum", "mean", "min", "max", "stddev", "variance"]
ints = st.one_of(st.none(), st.integers(-1000, 1000))
floats = st.one_of(st.none(), st.integers(-4000, 4000).map(lambda k: k / 4))
strings = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "dd", ""]))


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return bool(got == want) and type(got) is type(want)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), function=st.sampled_from(sorted(FUNCTIONS)))
def test_grouped_update_equals_one_update_per_group(data: st.DrawFn, function: str) -> None:
    kind = "str" if function in ("last", "count_distinct") and data.draw(st.booleans()) else (
        data.draw(st.sampled_from(["int", "float"])))
    values = data.draw(st.lists({"int": ints, "float": floats, "str": strings}[kind],
                                min_size=1, max_size=60))
    n = len(values)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=8))) - {n})
    starts = np.asarray([0, *cuts], dtype=np.intp)
    ts = np.asarray(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), np.int64)
    order = Order.of(ts, seq=np.arange(n)[::-1].copy())
    arrow_type = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}[kind]
    fn = FUNCTIONS[function]
    got = fn.update_grouped(pa.array(values, arrow_type), order, starts)
    bounds = [*starts.tolist(), n]
    assert len(got) == len(starts)
    # the bulk encoding gives the bytes encode gives of each state
    assert fn.encode_grouped(pa.array(values, arrow_type), order, starts) == [
        fn.encode(state) for state in got]
    for g, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        part = Order(order.ts[lo:hi], order.created[lo:hi], order.seq[lo:hi])
        want = fn.update(fn.init(), pa.array(values[lo:hi], arrow_type), part)
        assert _same(fn.finalize(got[g]), fn.finalize(want)), (g, got[g], want)
        assert fn.encode(got[g]) == fn.encode(want) or function in ("mean", "stddev",
                                                                    "variance")


def test_grouped_count_distinct_becomes_a_sketch_past_the_exact_limit() -> None:
    fn = FUNCTIONS["count_distinct"]
    values = pa.array([1, 2, 3, *range(300)])
    small, big = fn.update_grouped(values, None, np.asarray([0, 3], dtype=np.intp))
    assert fn.finalize(small) == 3
    assert fn.encode(big)[:1] == b"D"
    assert abs(fn.finalize(big) - 300) < 300 * 0.05


CARD = hw.Entity("card", join_keys=["card_id"])


def view(*aggregations: hw.Aggregation) -> hw.FeatureView:
    return hw.FeatureView("txn", entities=[CARD], source=hw.FileSource("x.parquet", "ts"),
                          schema=[hw.Field("amount", hw.Float64)], aggregations=aggregations)


def events(cards: list[int], minutes: list[int], amounts: list[float | None]) -> pa.Table:
    n = len(cards)
    micros = [m * 60_000_000 for m in minutes]
    return pa.table({
        "card_id": pa.array(cards, pa.int64()),
        "__hw_ts": pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "__hw_created": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "__hw_seq": pa.array(range(n), pa.int64()),
        "amount": pa.array(amounts, pa.float64()),
    })


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 30), floats), max_size=40),
       split=st.integers(0, 40))
def test_partials_group_by_entity_and_tile(rows: list[tuple[int, int, float | None]],
                                           split: int) -> None:
    aggs = (hw.Aggregation("amount", "sum", timedelta(minutes=10), timedelta(minutes=5)),
            hw.Aggregation("amount", "count", timedelta(minutes=6), timedelta(minutes=2)))
    v = view(*aggs)
    table = events([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    got = partials(v, table)
    # the same partials from two batches, combined
    a, b = partials(v, table.slice(0, split)), partials(v, table.slice(split))
    merged = dict(a.by_key)
    for key, part in b.by_key.items():
        merged[key] = combine(merged[key], part, aggs) if key in merged else part
    assert set(merged) == set(got.by_key)
    for card in {r[0] for r in rows}:
        key = encode_key(["card_id"], [card])
        mine = [r for r in rows if r[0] == card]
        assert got.by_key[key].latest_us == max(r[1] for r in mine) * 60_000_000
        for position, (agg, size) in enumerate(zip(aggs, (5, 2), strict=True)):
            expected: dict[int, Any] = {}
            for _, minute, amount in mine:
                start = (minute // size) * size * 60_000_000
                bucket = expected.setdefault(start, [])
                if amount is not None:
                    bucket.append(amount)
            tiles = got.by_key[key].states(aggs, position)
            other = merged[key].states(aggs, position)
            assert set(tiles) == set(expected) == set(other)
            for start, amounts in expected.items():
                want = sum(amounts) if agg.function == "sum" else len(amounts)
                fn = FUNCTIONS[agg.function]
                assert fn.finalize(tiles[start]) == want
                assert fn.finalize(other[start]) == want


def test_partials_name_missing_columns_and_null_keys() -> None:
    v = view(hw.Aggregation("amount", "sum", timedelta(hours=1)))
    table = events([1], [0], [1.0])
    with pytest.raises(DataError, match="no column '__hw_seq'"):
        partials(v, table.drop_columns(["__hw_seq"]))
    nulls = table.set_column(0, "card_id", pa.array([None], pa.int64()))
    with pytest.raises(DataError, match="join key 'card_id' has 1 nulls"):
        partials(v, nulls)
    assert partials(v, table.slice(0, 0)).by_key == {}
