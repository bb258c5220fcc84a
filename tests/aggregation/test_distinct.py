"""count_distinct: exact up to 256 distinct values, within 5% beyond, deterministic hashing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.aggregation.base import FUNCTIONS
from headwater.aggregation.distinct import EXACT_LIMIT, hash_values
from tests.aggregation.merging import merge_randomly, split_points

DISTINCT = FUNCTIONS["count_distinct"]


@st.composite
def small_sets(draw: st.DrawFn) -> list[Any]:
    element = draw(
        st.sampled_from(
            [st.integers(-50, 50), st.text(max_size=3), st.floats(-5, 5, allow_nan=False)]
        )
    )
    return draw(st.lists(st.one_of(st.none(), element), max_size=200))


@settings(max_examples=200, deadline=None)
@given(values=small_sets(), data=st.data())
def test_exact_on_small_sets_over_random_tiles(values: list[Any], data: st.DataObject) -> None:
    states = [
        DISTINCT.decode(
            DISTINCT.encode(DISTINCT.update(DISTINCT.init(), np.array(values[lo:hi], dtype=object)))
        )
        for lo, hi in split_points(data.draw, len(values))
    ]
    got = DISTINCT.finalize(merge_randomly(data.draw, DISTINCT, states))
    want = len({0.0 if v == 0 else v for v in values if v is not None})
    assert got == want


@pytest.mark.parametrize("n", [EXACT_LIMIT + 1, 1_000, 5_000, 12_000, 50_000, 300_000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_large_sets_within_documented_error(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.choice(np.iinfo(np.int64).max, size=n, replace=False)
    repeated = np.concatenate([values, values[: n // 3]])
    rng.shuffle(repeated)
    parts = np.array_split(repeated, 7)
    states = [DISTINCT.update(DISTINCT.init(), p) for p in parts]
    whole = DISTINCT.update(DISTINCT.init(), repeated)
    merged = states[0]
    for s in reversed(states[1:]):
        merged = DISTINCT.merge(s, merged)
    assert np.array_equal(merged, whole)  # the state depends only on the set of values
    estimate = DISTINCT.finalize(DISTINCT.decode(DISTINCT.encode(merged)))
    assert abs(estimate - n) <= 0.05 * n, (estimate, n)


def test_strings_from_arrow_and_hashes_are_stable_across_processes() -> None:
    state = DISTINCT.update(DISTINCT.init(), pa.array(["a", "b", None, "a"]))
    assert DISTINCT.finalize(state) == 2
    # Fixed constants: a salted or platform-dependent hash would change these.
    assert int(hash_values(np.array(["abc"]))[0]) == 13178474878074054718
    assert int(hash_values(np.array([1], dtype=np.int64))[0]) == 16294208416658607535
    assert int(hash_values(np.array([1.5]))[0]) == 4519997290006579728


def test_equal_numbers_of_different_types_are_one_value() -> None:
    ints = DISTINCT.update(DISTINCT.init(), np.array([0, 1, 2], dtype=np.int64))
    floats = DISTINCT.update(DISTINCT.init(), np.array([-0.0, 1.0, 2.0, 2.5]))
    assert DISTINCT.finalize(DISTINCT.merge(ints, floats)) == 4
