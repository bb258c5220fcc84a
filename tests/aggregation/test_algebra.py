"""The merge laws of count, sum, mean, min, max, variance and stddev against numpy.

Random batches, with nulls, are split into random tiles (each tile fed as one or two update
batches, as numpy or Arrow), the tile states are round-tripped through encode/decode and merged
in random orders and groupings; the result must finalize to what numpy computes over all the
non-null values at once. Float results agree within 1e-9 relative to the magnitude of the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.aggregation.base import FUNCTIONS
from headwater.errors import DataError
from tests.aggregation.merging import merge_randomly, split_points


def _var(x: np.ndarray[Any, Any]) -> float | None:
    return float(np.var(x, ddof=1)) if x.shape[0] >= 2 else None


def _std(x: np.ndarray[Any, Any]) -> float | None:
    return float(np.std(x, ddof=1)) if x.shape[0] >= 2 else None


ORACLES: dict[str, Callable[[np.ndarray[Any, Any]], Any]] = {
    "count": lambda x: x.shape[0],
    "sum": lambda x: x.sum() if x.shape[0] else 0,
    "mean": lambda x: float(np.mean(x)) if x.shape[0] else None,
    "min": lambda x: x.min() if x.shape[0] else None,
    "max": lambda x: x.max() if x.shape[0] else None,
    "variance": _var,
    "stddev": _std,
}

ints = st.one_of(st.none(), st.integers(-(10**6), 10**6))
floats = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
# Values close together far from zero: where a naive sum-of-squares variance falls apart.
clustered = st.one_of(st.none(), st.floats(1e9, 1e9 + 1, allow_nan=False))


def _close(got: Any, want: Any, slack: float) -> bool:
    if want is None or got is None:
        return got is want
    if isinstance(want, (int, np.integer)) and isinstance(got, int):
        return got == int(want)
    want_f = float(want)
    return abs(float(got) - want_f) <= 1e-9 * abs(want_f) + slack


def _slack(name: str, x: np.ndarray[Any, Any]) -> float:
    """The absolute error float64 itself forces on a statistic of ``x``, whoever computes it.

    A deviation ``x - mean`` is only known to within a few ulps of ``max|x|`` (``delta``), so
    the variance of tightly clustered values far from zero is only known to within about
    ``2 * spread * delta`` (numpy's answer has the same error); sums and means are good to
    1e-9 of ``max|x|``.
    """
    if x.shape[0] == 0:
        return 0.0
    big = float(np.max(np.abs(x)))
    delta = 16 * np.finfo(np.float64).eps * big
    spread = float(np.max(np.abs(x - np.mean(x))))
    if name == "variance":
        return 2 * spread * delta + delta * delta
    if name == "stddev":
        return delta
    return 1e-9 * big


def _as_batch(part: list[Any], kind: str, as_arrow: bool) -> Any:
    if as_arrow:
        return pa.array(part, type=pa.int64() if kind == "int" else pa.float64())
    if kind == "float":
        return np.array([np.nan if v is None else v for v in part], dtype=np.float64)
    return np.array(part, dtype=object)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[str, list[Any], list[tuple[int, int]], list[bool]]:
    kind = draw(st.sampled_from(["int", "float", "clustered"]))
    values = draw(
        st.lists({"int": ints, "float": floats, "clustered": clustered}[kind], max_size=80)
    )
    parts = split_points(draw, len(values))
    arrow = [draw(st.booleans()) for _ in parts]
    return ("int" if kind == "int" else "float"), values, parts, arrow


@pytest.mark.parametrize("name", sorted(ORACLES))
@settings(max_examples=150, deadline=None)
@given(case=scenario(), data=st.data())
def test_merged_tiles_match_numpy(
    name: str, case: tuple[str, list[Any], list[tuple[int, int]], list[bool]], data: st.DataObject
) -> None:
    kind, values, parts, arrow = case
    agg = FUNCTIONS[name]
    states = []
    for (lo, hi), as_arrow in zip(parts, arrow, strict=True):
        part = values[lo:hi]
        mid = data.draw(st.integers(0, len(part)))
        state = agg.init()
        for piece in (part[:mid], part[mid:]):
            state = agg.update(state, _as_batch(piece, kind, as_arrow))
        states.append(agg.decode(agg.encode(state)))
    merged = merge_randomly(data.draw, agg, states)
    valid = [v for v in values if v is not None]
    x = np.array(valid, dtype=np.int64 if kind == "int" else np.float64)
    want = ORACLES[name](x)
    got = agg.finalize(merged)
    assert _close(got, want, _slack(name, x)), (got, want)


@pytest.mark.parametrize("name", sorted(ORACLES))
@settings(max_examples=100, deadline=None)
@given(values=st.lists(floats, max_size=60), cut=st.integers(0, 60))
def test_update_of_batch_equals_merge_of_parts(name: str, values: list[Any], cut: int) -> None:
    agg = FUNCTIONS[name]
    whole = agg.update(agg.init(), _as_batch(values, "float", as_arrow=False))
    left = agg.update(agg.init(), _as_batch(values[:cut], "float", as_arrow=True))
    right = agg.update(agg.init(), _as_batch(values[cut:], "float", as_arrow=False))
    x = np.array([v for v in values if v is not None], dtype=np.float64)
    assert _close(agg.finalize(agg.merge(left, right)), agg.finalize(whole), _slack(name, x))


@pytest.mark.parametrize("name", sorted(ORACLES))
@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(ints, floats), max_size=40))
def test_encode_decode_round_trip(name: str, values: list[Any]) -> None:
    agg = FUNCTIONS[name]
    state = agg.update(agg.init(), np.array(values, dtype=object))
    data = agg.encode(state)
    assert isinstance(data, bytes)
    assert agg.encode(agg.decode(data)) == data
    got, want = agg.finalize(agg.decode(data)), agg.finalize(state)
    assert got == want or (isinstance(got, float) and math.isnan(got) and math.isnan(want))


@pytest.mark.parametrize(
    ("name", "empty"),
    [("count", 0), ("sum", 0), ("mean", None), ("min", None), ("max", None),
     ("variance", None), ("stddev", None), ("last", None), ("count_distinct", 0)],
)
def test_empty_window(name: str, empty: Any) -> None:
    agg = FUNCTIONS[name]
    assert agg.finalize(agg.init()) == empty
    assert agg.finalize(agg.merge(agg.init(), agg.init())) == empty
    assert agg.finalize(agg.decode(agg.encode(agg.init()))) == empty


def test_nulls_are_ignored_in_every_input_form() -> None:
    for batch in (
        pa.array([1.0, None, 3.0]),
        pa.chunked_array([[1.0, None], [3.0]]),
        np.array([1.0, np.nan, 3.0]),
        np.array([1.0, None, 3.0], dtype=object),
        [1.0, None, 3.0],
    ):
        assert FUNCTIONS["count"].finalize(FUNCTIONS["count"].update(0, batch)) == 2
        mean = FUNCTIONS["mean"]
        assert mean.finalize(mean.update(mean.init(), batch)) == 2.0


def test_sample_variance_like_duckdb_var_samp() -> None:
    var, std = FUNCTIONS["variance"], FUNCTIONS["stddev"]
    state = var.update(var.init(), np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]))
    assert var.finalize(state) == pytest.approx(32 / 7)
    assert std.finalize(state) == pytest.approx(math.sqrt(32 / 7))
    one = var.update(var.init(), np.array([3.0]))
    assert var.finalize(one) is None  # var_samp of one value is NULL


def test_integer_sum_is_exact_and_stays_int() -> None:
    agg = FUNCTIONS["sum"]
    state = agg.update(agg.init(), np.array([2**53, 1, 1], dtype=np.int64))
    assert agg.finalize(state) == 2**53 + 2
    assert isinstance(agg.finalize(agg.decode(agg.encode(state))), int)


def test_non_numeric_values_are_a_clear_error() -> None:
    with pytest.raises(DataError, match="must be numeric"):
        FUNCTIONS["sum"].update(0, np.array(["a", "b"]))


def test_integer_sum_beyond_int64_is_exact_and_round_trips() -> None:
    agg = FUNCTIONS["sum"]
    big = np.array([2**62, 2**62, 2**62], dtype=np.int64)
    state = agg.update(agg.update(agg.init(), big), big)
    assert agg.finalize(state) == 6 * 2**62
    assert agg.finalize(agg.decode(agg.encode(state))) == 6 * 2**62
