"""The synthetic trip events the demo streams and the benchmarks replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from headwater.testing.data import hidden_rates, trip_events

START = datetime(2024, 1, 1, tzinfo=UTC)


def test_trip_events_are_ordered_in_range_and_typed() -> None:
    table = trip_events(20, 5_000, START, START + timedelta(hours=2), seed=3)
    assert table.schema == pa.schema([
        ("driver_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
        ("fare", pa.float64()), ("rating", pa.int64())])
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    assert np.all(np.diff(ts) >= 0)
    assert table.column("ts")[0].as_py() >= START
    assert table.column("ts")[-1].as_py() < START + timedelta(hours=2)
    assert pc.min(table.column("fare")).as_py() > 0
    assert 0 < table.column("rating").null_count < table.num_rows * 0.2
    assert set(pc.unique(table.column("rating").drop_null()).to_pylist()) <= {1, 2, 3, 4, 5}
    assert table.equals(trip_events(20, 5_000, START, START + timedelta(hours=2), seed=3))


def test_busier_drivers_have_more_trips() -> None:
    table = trip_events(5, 50_000, START, START + timedelta(days=1))
    counts = np.bincount(table.column("driver_id").to_numpy() - 1001, minlength=5)
    assert np.argmax(counts) == np.argmax(hidden_rates(5))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="start < end"):
        trip_events(1, 1, START, START)
