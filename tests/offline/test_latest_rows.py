"""latest_rows: per entity, the row the point-in-time rule picks at the end of a range."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.offline.duckdb import DuckDBEngine
from tests.offline.conftest import (
    UTC_US,
    entity_rows,
    hours,
    request,
    stats_table,
    stats_view,
)


def latest(engine: DuckDBEngine, start: float, end: float,
           path: str = "data/stats.parquet") -> list[dict[str, object]]:
    reader = engine.latest_rows(stats_view(path), hours(start), hours(end))
    return sorted(reader.read_all().to_pylist(), key=lambda r: str(r["driver_id"]))


def test_latest_row_per_entity_with_ties_broken_by_created(engine: DuckDBEngine) -> None:
    rows = latest(engine, 0, 5)
    assert [(r["driver_id"], r["conv_rate"], r["trips"]) for r in rows] == [
        (1, 0.3, 30), (2, 0.9, 90)]
    assert rows[0]["__hw_ts"] == hours(2)
    assert rows[0]["__hw_created"] == hours(3)


def test_range_bounds_are_inclusive(engine: DuckDBEngine) -> None:
    assert [(r["driver_id"], r["trips"]) for r in latest(engine, 0, 1.5)] == [(1, 10), (2, 90)]
    assert [(r["driver_id"], r["trips"]) for r in latest(engine, 2, 2)] == [(1, 30)]
    assert latest(engine, 5, 6) == []


def test_schema_and_null_features_of_the_latest_row(repo: Path, engine: DuckDBEngine) -> None:
    newer = pa.table({
        "driver_id": pa.array([2], pa.int64()),
        "event_timestamp": pa.array([hours(4)], UTC_US),
        "created": pa.array([None], UTC_US),
        "conv_rate": pa.array([None], pa.float64()),
        "trips": pa.array([7], pa.int64()),
    })
    folder = repo / "data" / "both"
    folder.mkdir()
    pq.write_table(stats_table(), folder / "a.parquet")
    pq.write_table(newer, folder / "b.parquet")
    reader = engine.latest_rows(stats_view("data/both"), hours(0) - timedelta(days=1),
                                hours(9).replace(tzinfo=None))
    table = reader.read_all()
    assert table.schema.names == ["driver_id", "__hw_ts", "__hw_created", "conv_rate", "trips"]
    assert table.schema.field("__hw_ts").type == UTC_US
    row = next(r for r in table.to_pylist() if r["driver_id"] == 2)
    assert row == {"driver_id": 2, "__hw_ts": hours(4), "__hw_created": None,
                   "conv_rate": None, "trips": 7}


def test_a_value_that_does_not_fit_the_declared_dtype_is_the_same_data_error(
        repo: Path, engine: DuckDBEngine) -> None:
    """Materialization and retrieval cast source values to the declared dtype alike."""
    pq.write_table(pa.table({
        "driver_id": pa.array([1], pa.int64()),
        "event_timestamp": pa.array([hours(0)], UTC_US),
        "created": pa.array([hours(0)], UTC_US),
        "conv_rate": pa.array([0.5]),
        "trips": pa.array([2**63 + 5], pa.uint64()),  # declared Int64
    }), repo / "data" / "huge.parquet")
    view = stats_view("data/huge.parquet")
    with pytest.raises(hw.DataError) as materialized:
        engine.latest_rows(view, hours(0), hours(1)).read_all()
    with pytest.raises(hw.DataError) as retrieved:
        engine.get_historical_features(entity_rows([hours(1)]), [request(view)]).to_arrow()
    for err in (materialized, retrieved):
        message = str(err.value)
        assert "FeatureView 'driver_stats'" in message
        assert "feature 'trips'" in message and "uint64" in message and "int64" in message
        assert "Fix: declare the feature with the source's type" in message
