"""``latest_time``: the greatest event time of a source, as ``read_source`` would read it,
without reading the rows out: timestamps with and without a zone, dates, ISO strings with
offsets, an empty source, and a clear error for a missing or unusable column."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.errors import DataError
from headwater.offline.duckdb import DuckDBEngine


def latest_by_reading(engine: DuckDBEngine, source: hw.FileSource) -> datetime | None:
    value = pc.max(engine.read_source(source, [source.timestamp_field]).column(0)).as_py()
    return value if isinstance(value, datetime) else None


@pytest.mark.parametrize("column", [
    pa.array([datetime(2024, 1, 2, 5), datetime(2024, 3, 1, 23, 59), None],
             pa.timestamp("us")),  # naive: UTC
    pa.array([datetime(2024, 1, 2, 5, tzinfo=UTC), datetime(2024, 3, 1, 23, tzinfo=UTC)],
             pa.timestamp("us", "UTC")),
    pa.array([date(2024, 1, 2), date(2024, 3, 1)], pa.date32()),
    # the latest instant is not the greatest string
    pa.array(["2024-03-01T23:00:00+05:00", "2024-03-01T20:00:00-02:00"], pa.string()),
])
def test_latest_time_equals_the_max_of_what_read_source_reads(
        repo: Path, engine: DuckDBEngine, column: pa.Array) -> None:
    pq.write_table(pa.table({"id": list(range(len(column))), "ts": column}),
                   repo / "data" / "times.parquet")
    source = hw.FileSource("data/times.parquet", timestamp_field="ts")
    expected = latest_by_reading(engine, source)
    assert expected is not None
    assert engine.latest_time(source) == expected


def test_an_empty_source_has_no_latest_time(repo: Path, engine: DuckDBEngine) -> None:
    pq.write_table(pa.table({"id": pa.array([], pa.int64()),
                             "ts": pa.array([], pa.timestamp("us", "UTC"))}),
                   repo / "data" / "empty.parquet")
    assert engine.latest_time(hw.FileSource("data/empty.parquet", timestamp_field="ts")) is None


def test_a_missing_or_unusable_time_column_is_named(repo: Path, engine: DuckDBEngine) -> None:
    pq.write_table(pa.table({"id": [1], "ts": [3.5]}), repo / "data" / "bad.parquet")
    with pytest.raises(DataError, match="'when'"):
        engine.latest_time(hw.FileSource("data/bad.parquet", timestamp_field="when"))
    with pytest.raises(DataError, match="time column 'ts' has type double"):
        engine.latest_time(hw.FileSource("data/bad.parquet", timestamp_field="ts"))
