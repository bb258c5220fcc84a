"""The ASOF order key: a BIGINT for regular data, a HUGEINT or a struct when the data's
ranges need more bits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from headwater.offline import order_key
from headwater.testing.data import driver_stats

TS = 'CAST("event_timestamp" AS TIMESTAMPTZ)'
CREATED = 'CAST("created" AS TIMESTAMPTZ)'
ORDER = ("rowid",)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.sql("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def choose(con: duckdb.DuckDBPyConnection, table: pa.Table) -> order_key.OrderKey:
    con.register("source_rows", table)
    con.sql("CREATE OR REPLACE TEMP TABLE rows AS SELECT * FROM source_rows")
    span = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    return order_key.choose(con, "FROM rows WHERE true", {}, ts=TS, created=CREATED,
                            order=ORDER, entity_range=span, name="k")


def used(sql: str, params: dict[str, object]) -> dict[str, object]:
    """The parameters a statement names (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}


def scatter(table: pa.Table, column: int, low: int, high: int) -> pa.Table:
    """Replace a time column by times scattered to the microsecond in [low, high) us."""
    micros = np.random.default_rng(column).integers(low, high, size=table.num_rows)
    times = pa.array(micros, pa.int64()).cast(pa.timestamp("us", "UTC"))
    return table.set_column(column, table.schema.field(column).name, times)


def test_hourly_data_gets_a_bigint_key(con: duckdb.DuckDBPyConnection) -> None:
    assert choose(con, driver_stats(200, 48)).kind == "bigint"


def test_scattered_times_get_wider_keys(con: duckdb.DuckDBPyConnection) -> None:
    table = driver_stats(10, 100)
    centuries = scatter(table, 1, -(2**60), 2**60)  # 61 bits of event time, 10 of order
    centuries = centuries.set_column(2, "created", centuries.column(1))  # no delay
    assert choose(con, centuries).kind == "hugeint"
    both = scatter(centuries, 2, -(2**62), 2**62)  # and 64 bits of created delay
    key = choose(con, both)
    assert key.kind == "struct"
    assert key.feature_sql.startswith("{")


def test_no_rows_is_trivially_tie_free(con: duckdb.DuckDBPyConnection) -> None:
    assert choose(con, driver_stats(2, 2).slice(0, 0)).kind == "bigint"


def test_bigint_keys_order_rows_and_place_entities(con: duckdb.DuckDBPyConnection) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    table = pa.table({
        "event_timestamp": pa.array([t0, t0, t0, t0 + timedelta(hours=1)],
                                    pa.timestamp("us", "UTC")),
        "created": pa.array([t0 + timedelta(seconds=5), None, t0 + timedelta(seconds=5),
                             t0], pa.timestamp("us", "UTC")),
    })
    key = choose(con, table)
    assert key.kind == "bigint"
    keys = [k for (k,) in con.sql(f"SELECT {key.feature_sql} FROM rows ORDER BY rowid",
                                  params=used(key.feature_sql, key.params)).fetchall()]
    # null created first, then by created, then by row: rows 1 < 0 < 2 < 3
    assert keys[1] < keys[0] < keys[2] < keys[3]
    probe = "CAST($t AS TIMESTAMPTZ)"
    entity = key.entity_sql(probe)
    at = {t: con.sql(f"SELECT {entity}",
                     params={**used(entity, key.params), "t": t}).fetchall()[0][0]
          for t in (t0 - timedelta(seconds=1), t0, t0 + timedelta(minutes=30),
                    t0 + timedelta(days=400))}
    values = list(at.values())
    assert values[0] < min(keys)  # before every row
    assert keys[2] <= values[1] < keys[3]  # at t0: all three rows of t0, not the next hour
    assert keys[2] <= values[2] < keys[3]
    assert values[3] >= keys[3]  # long after: clamped, still above every row
