"""Reference statistics: numbers checked against numpy, categories, JSON round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from headwater.models.reference import QUANTILES, reference_statistics
from headwater.monitoring.profile import (
    HISTOGRAM_BINS,
    CategoricalProfile,
    NumericProfile,
    profile,
)


def test_numeric_statistics_match_numpy() -> None:
    rng = np.random.default_rng(0)
    values = rng.lognormal(size=1000)
    with_gaps = pa.array([*values.tolist(), np.nan, np.inf, None])
    table = pa.table({"x": with_gaps, "n": pa.array(np.arange(1003, dtype=np.int64))})
    stats = reference_statistics(table, ["x", "n"])
    x = stats["features"]["x"]
    assert (x["kind"], x["type"], x["count"], x["nulls"], x["infinite"]) == (
        "numeric", "double", 1003, 2, 1)
    assert x["min"] == values.min() and x["max"] == values.max()
    assert x["mean"] == pytest.approx(values.mean())
    assert x["std"] == pytest.approx(values.std())
    for key, q in QUANTILES.items():
        assert x["quantiles"][key] == pytest.approx(np.quantile(values, q))
    edges = x["histogram"]["edges"]
    assert len(edges) == HISTOGRAM_BINS + 1
    assert edges[0] == values.min() and edges[-1] == values.max()
    assert sum(x["histogram"]["counts"]) == 1000
    assert max(x["histogram"]["counts"]) - min(x["histogram"]["counts"]) <= 2  # deciles
    n = stats["features"]["n"]
    assert (n["type"], n["nulls"], n["min"], n["max"]) == ("int64", 0, 0.0, 1002.0)
    assert stats["rows"] == 1003


def test_constant_and_empty_columns() -> None:
    table = pa.table({"c": pa.array([2.0, 2.0, 2.0]), "e": pa.array([None, None, None],
                                                                     pa.float64())})
    stats = reference_statistics(table, ["c", "e"])["features"]
    assert stats["c"]["histogram"] == {"edges": [2.0], "counts": [3]}
    assert stats["c"]["std"] == 0.0
    assert stats["e"]["nulls"] == 3
    assert stats["e"]["mean"] is None and stats["e"]["histogram"] is None


def test_categorical_statistics_count_top_values() -> None:
    words = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + [f"w{i}" for i in range(30)] + [None] * 2
    table = pa.table({"s": pa.array(words), "d": pa.array(words).dictionary_encode(),
                      "b": pa.array([True, False, True, None])
                      .take(pa.array(np.arange(len(words)) % 4))})
    stats = reference_statistics(table, ["s", "d", "b"])["features"]
    s = stats["s"]
    assert (s["kind"], s["nulls"], s["distinct"]) == ("categorical", 2, 33)
    assert s["top"][:3] == [{"value": "a", "count": 5}, {"value": "b", "count": 3},
                            {"value": "c", "count": 3}]
    assert len(s["top"]) == 20
    assert s["other"] == 41 - sum(t["count"] for t in s["top"])
    assert stats["d"]["top"] == s["top"]  # dictionaries are read as their values
    assert stats["b"]["top"] == [{"value": True, "count": 22}, {"value": False, "count": 11}]


def test_label_outputs_and_json() -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 1, 0],
                      "ts": pa.array([datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3, 4)],
                                     pa.timestamp("us", "UTC"))})
    stats = reference_statistics(
        table, ["x", "ts"], label="y",
        outputs={"prediction": np.array([0, 1, 1, 1]), "probability": np.array([.2, .7])})
    assert stats["label"]["mean"] == 0.5
    assert stats["prediction"]["count"] == 4 and stats["prediction"]["mean"] == 0.75
    assert stats["probability"]["max"] == 0.7
    assert stats["features"]["ts"] == {"kind": "time", "type": "timestamp[us, tz=UTC]",
                                       "count": 4, "nulls": 0,
                                       "min": "2024-01-01T00:00:00+00:00",
                                       "max": "2024-01-04T00:00:00+00:00"}
    assert json.loads(json.dumps(stats, allow_nan=False)) == stats


def test_reference_and_monitoring_windows_share_histograms() -> None:
    rng = np.random.default_rng(3)
    table = pa.table({"x": rng.normal(size=500), "s": rng.choice(["a", "b", "c"], 500)})
    stats = reference_statistics(table, ["x", "s"])["features"]
    whole = profile(table)
    assert whole.edges() == {"x": stats["x"]["histogram"]["edges"]}
    windows = [profile(table.slice(i, 100), edges=whole.edges()) for i in range(0, 500, 100)]
    merged = windows[0]
    for window in windows[1:]:
        merged = merged.merge(window)
    x, s = merged["x"], merged["s"]
    assert isinstance(x, NumericProfile) and isinstance(s, CategoricalProfile)
    assert list(x.counts) == stats["x"]["histogram"]["counts"]
    assert [{"value": v, "count": n} for v, n in s.top(3)] == stats["s"]["top"]
