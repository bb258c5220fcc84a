"""``last``: the latest non-null value by (ts, created, ingestion order), whatever the tiling.

Event times and created times are drawn from tiny ranges so ties on ts, and on (ts, created),
are common; the ingestion order breaks them. Tiles are arbitrary subsets of the events (a late
event may land in any tile), merged in random orders and groupings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.aggregation.base import FUNCTIONS
from headwater.aggregation.batch import Order
from headwater.errors import DataError
from tests.aggregation.merging import merge_randomly

LAST = FUNCTIONS["last"]


@st.composite
def events(draw: st.DrawFn) -> list[tuple[int, int, int, Any]]:
    n = draw(st.integers(0, 40))
    seqs = draw(st.permutations(list(range(n))))
    return [
        (
            draw(st.integers(0, 3)),
            draw(st.integers(0, 2)),
            seqs[i],
            draw(st.one_of(st.none(), st.integers(-100, 100))),
        )
        for i in range(n)
    ]


def _batch(evs: list[tuple[int, int, int, Any]]) -> tuple[Any, Order]:
    values = pa.array([e[3] for e in evs], type=pa.int64())
    order = Order.of([e[0] for e in evs], [e[1] for e in evs], [e[2] for e in evs])
    return values, order


@settings(max_examples=300, deadline=None)
@given(evs=events(), data=st.data())
def test_last_matches_brute_force_over_random_tiles(
    evs: list[tuple[int, int, int, Any]], data: st.DataObject
) -> None:
    tile_of = [data.draw(st.integers(0, 3)) for _ in evs]
    states = []
    for tile in range(4):
        members = [e for e, t in zip(evs, tile_of, strict=True) if t == tile]
        values, order = _batch(members)
        states.append(LAST.decode(LAST.encode(LAST.update(LAST.init(), values, order))))
    got = LAST.finalize(merge_randomly(data.draw, LAST, states))
    valid = [e for e in evs if e[3] is not None]
    want = max(valid, key=lambda e: (e[0], e[1], e[2]))[3] if valid else None
    assert got == want


def test_ties_on_ts_resolved_by_created_then_ingestion_order() -> None:
    values = np.array([10, 20, 30, 40], dtype=np.int64)
    same_ts = Order.of([5, 5, 5, 4], created=[1, 2, 2, 9], seq=[3, 1, 2, 4])
    # ts 5 beats 4; created 2 beats 1; among (5, 2), seq 2 beats seq 1.
    assert LAST.finalize(LAST.update(LAST.init(), values, same_ts)) == 30
    split = LAST.merge(
        LAST.update(LAST.init(), values[2:], Order.of([5, 4], [2, 9], [2, 4])),
        LAST.update(LAST.init(), values[:2], Order.of([5, 5], [1, 2], [3, 1])),
    )
    assert LAST.finalize(split) == 30


def test_null_values_are_skipped_and_strings_kept() -> None:
    values = np.array(["a", None, "c", None], dtype=object)
    state = LAST.update(LAST.init(), values, Order.of([1, 4, 2, 3]))
    assert LAST.finalize(state) == "c"
    assert LAST.decode(LAST.encode(state)) == state


def test_equal_keys_merge_commutatively() -> None:
    a = LAST.update(LAST.init(), np.array([1]), Order.of([7], [0], [0]))
    b = LAST.update(LAST.init(), np.array([2]), Order.of([7], [0], [0]))
    assert LAST.merge(a, b) == LAST.merge(b, a)


def test_missing_or_mismatched_order_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="order key is missing"):
        LAST.update(LAST.init(), np.array([1.0]))
    with pytest.raises(DataError, match="one order key per event"):
        LAST.update(LAST.init(), np.array([1.0, 2.0]), Order.of([1]))
