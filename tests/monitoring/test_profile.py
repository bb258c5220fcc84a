"""Profiles: merged windows equal the profile of the whole, numbers match numpy, JSON round
trip, and bad input is refused by name."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.errors import DataError
from headwater.monitoring.profile import (
    MAX_CATEGORIES,
    QUANTILES,
    CategoricalProfile,
    NumericProfile,
    Profile,
    profile,
)

numbers = st.one_of(st.none(), st.just(float("nan")),
                    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                    st.integers(-5, 5).map(float))
words = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "é", ""]))


def assert_same(merged: Profile, whole: Profile) -> None:
    assert merged.rows == whole.rows
    assert merged.columns.keys() == whole.columns.keys()
    for name, w in whole.columns.items():
        m = merged.columns[name]
        if isinstance(w, CategoricalProfile):
            assert m == w
            continue
        assert isinstance(m, NumericProfile)
        exact = ("count", "nulls", "infinite", "min", "max", "edges", "counts", "below",
                 "above")
        assert {k: getattr(m, k) for k in exact} == {k: getattr(w, k) for k in exact}
        if w.mean is None:
            assert m.mean is None and m.std is None
            continue
        assert m.std is not None and w.std is not None
        scale = max(abs(w.min or 0.0), abs(w.max or 0.0), 1.0)
        assert m.mean == pytest.approx(w.mean, rel=1e-9, abs=1e-12 * scale)
        assert m.std == pytest.approx(w.std, rel=1e-9, abs=1e-7 * scale)
        assert m.quantiles() == pytest.approx(w.quantiles(), rel=1e-9, abs=1e-9 * scale)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(numbers, words, st.one_of(st.none(), st.booleans()),
                               st.integers(-3, 3)), min_size=1, max_size=60),
       cuts=st.lists(st.integers(0, 60), max_size=4), shuffle=st.randoms())
def test_merged_random_splits_equal_the_whole(rows: list[tuple[Any, ...]], cuts: list[int],
                                              shuffle: Any) -> None:
    x, s, b, n = zip(*rows, strict=True)
    table = pa.table({"x": pa.array(x, pa.float64(), from_pandas=False),
                      "s": pa.array(s, pa.string()), "b": pa.array(b, pa.bool_()),
                      "n": pa.array(n, pa.int64())})
    whole = profile(table)
    bounds = sorted({0, len(rows), *(c for c in cuts if c <= len(rows))})
    parts = [profile(table.slice(lo, hi - lo), edges=whole.edges())
             for lo, hi in itertools.pairwise(bounds)]
    shuffle.shuffle(parts)
    left = parts[0]
    for part in parts[1:]:
        left = left.merge(part)
    assert_same(left, whole)
    if len(parts) >= 3:  # associativity: (a + b) + c == a + (b + c)
        right = parts[0].merge(parts[1].merge(parts[2]))
        assert_same(right, parts[0].merge(parts[1]).merge(parts[2]))
    assert Profile.from_dict(json.loads(json.dumps(left.to_dict(), allow_nan=False))) == left


def test_numeric_statistics_match_numpy() -> None:
    rng = np.random.default_rng(1)
    values = rng.lognormal(size=10_000)
    table = pa.table({"x": pa.array([*values.tolist(), np.nan, np.inf, None]),
                      "i": pa.array(np.arange(10_003, dtype=np.int64))})
    x = profile(table, ["x"])["x"]
    assert isinstance(x, NumericProfile)
    assert (x.count, x.nulls, x.infinite, x.values) == (10_003, 2, 1, 10_000)
    assert (x.min, x.max) == (values.min(), values.max())
    assert x.mean == pytest.approx(values.mean(), rel=1e-12)
    assert x.std == pytest.approx(values.std(), rel=1e-12)
    assert list(x.edges) == list(np.quantile(values, np.linspace(0, 1, 11)))
    assert sum(x.counts) == 10_000 and max(x.counts) - min(x.counts) <= 2
    assert x.counts == tuple(np.histogram(values, bins=np.array(x.edges))[0])
    estimates = x.quantiles()
    assert estimates is not None and list(estimates) == list(QUANTILES)
    for key, q in QUANTILES.items():  # histogram estimates: within the decile bin
        exact = np.quantile(values, q)
        low, high = np.quantile(values, [max(q - 0.1, 0), min(q + 0.1, 1)])
        assert low <= estimates[key] <= high, (key, exact)
    assert estimates["p50"] == pytest.approx(np.median(values), rel=1e-3)  # an edge
    assert profile(table)["i"] == profile(table.select(["i"]))["i"]


def test_fixed_edges_count_out_of_range_and_constants() -> None:
    table = pa.table({"x": [-5.0, 0.0, 0.5, 1.0, 2.0, 9.0], "c": [3.0] * 6})
    p = profile(table, edges={"x": [0.0, 1.0, 2.0]})
    x = p["x"]
    assert isinstance(x, NumericProfile)
    assert (x.counts, x.below, x.above) == ((2, 2), 1, 1)  # the last bin is closed
    assert x.quantiles() == pytest.approx(  # min and max bound the outer bins
        {"p01": -4.7, "p05": -3.5, "p25": 0.25, "p50": 1.0, "p75": 1.75, "p95": 6.9,
         "p99": 8.58})
    c = p["c"]
    assert isinstance(c, NumericProfile)
    assert (c.edges, c.counts, c.std) == ((3.0,), (6,), 0.0)
    assert c.quantiles() == dict.fromkeys(QUANTILES, 3.0)
    empty = profile(pa.table({"e": pa.array([None, None], pa.float64())}))["e"]
    assert isinstance(empty, NumericProfile)
    assert (empty.nulls, empty.mean, empty.std, empty.edges, empty.quantiles()) == (
        2, None, None, (), None)
    assert empty.merge(c, "e").counts == (6,)  # an empty window takes the other's edges


def test_categorical_counts_cap_and_frames() -> None:
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + [None] * 2
    frame = pd.DataFrame({"s": values, "k": pd.Categorical(values),
                          "b": [True, False, None, True] * 3 + [True]})
    p = profile(frame)
    s = p["s"]
    assert isinstance(s, CategoricalProfile)
    assert (s.family, s.count, s.nulls, s.other) == ("string", 13, 2, 0)
    assert s.top(2) == [("a", 5), ("b", 3)]
    assert p["k"] == s  # a category column reads as its values
    assert p["b"] == CategoricalProfile("bool", 13, 3, ((True, 7), (False, 3)))
    polars = pytest.importorskip("polars")
    assert profile(polars.from_pandas(frame))["s"] == s
    many = pa.table({"w": pa.array([f"v{i:05d}" for i in range(MAX_CATEGORIES + 10)]
                                   + ["v00003"])})
    w = profile(many)["w"]
    assert isinstance(w, CategoricalProfile)
    assert len(w.values) == MAX_CATEGORIES and w.other == 10 and w.top(1) == [("v00003", 2)]


def test_errors_name_the_column_and_the_fix() -> None:
    table = pa.table({"x": [1.0, 2.0], "s": ["a", "b"],
                      "t": pa.array([1, 2], pa.timestamp("s"))})
    with pytest.raises(DataError, match=r"column 'nope' is not in the data.*Fix"):
        profile(table, ["nope"])
    with pytest.raises(DataError, match=r"column 't' has type.*Fix: leave it out"):
        profile(table, ["t"])
    assert list(profile(table).columns) == ["x", "s"]  # timestamps are left out by default
    with pytest.raises(DataError, match=r"edges for column 'x'.*Fix"):
        profile(table, edges={"x": [2.0, 1.0]})
    with pytest.raises(DataError, match="'s', which is not numeric"):
        profile(table, edges={"s": [1.0]})
    with pytest.raises(DataError, match=r"column 'x' has different histogram edges.*Fix"):
        profile(table).merge(profile(pa.table({"x": [5.0, 9.0], "s": ["a", "b"]})))
    with pytest.raises(DataError, match="column 'x' is numeric in one profile and string"):
        profile(table).merge(profile(pa.table({"x": ["1", "2"], "s": ["a", "b"]})))
    with pytest.raises(DataError, match="column 's' is string in one profile and bool"):
        profile(table, ["s"]).merge(profile(pa.table({"s": [True]})))
    with pytest.raises(DataError, match=r"column 's' is in only one.*Fix"):
        profile(table, ["x"]).merge(profile(table, ["x", "s"]))
    with pytest.raises(DataError, match="no column 'y' in this profile"):
        profile(table)["y"]
    with pytest.raises(DataError, match="format version"):
        Profile.from_dict({"version": 99})
