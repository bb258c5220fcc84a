"""SQLSource against a real PostgreSQL: schema, point-in-time join, errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import headwater as hw
from headwater.config import parse_settings
from headwater.offline.duckdb import DuckDBEngine
from tests.offline.conftest import DRIVER, entity_rows, hours, request


@pytest.fixture
def pg_table(postgres_url: str) -> Iterator[str]:
    """A uniquely named table of driver stats (naive and zoned times, numeric, ties)."""
    import psycopg

    name = f"hw_stats_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{name}" (driver_id bigint, event_timestamp timestamptz, '
                     'created timestamp, conv_rate numeric(6, 3), trips integer)')
        conn.execute(
            f'INSERT INTO "{name}" VALUES '
            "(1, '2024-01-01 00:00+00', '2024-01-01 00:00', 0.1, 10), "
            "(1, '2024-01-01 03:00+01', '2024-01-01 03:00', 0.3, 30), "  # hour 2 UTC
            "(1, '2024-01-01 02:00+00', '2024-01-01 02:30', 0.2, 20), "
            "(2, '2024-01-01 01:00+00', '2024-01-01 01:00', 0.9, 90), "
            "(2, '2024-01-02 00:00+00', '2024-01-02 00:00', 0.5, 50)"
        )
    try:
        yield name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')


def engine_for(tmp_path: Path, url: str) -> DuckDBEngine:
    settings = parse_settings({"project": "t", "offline": {"connections": {"warehouse": url}}},
                              tmp_path)
    return DuckDBEngine(settings)


def sql_view(table: str, connection: str = "warehouse") -> hw.FeatureView:
    source = hw.SQLSource(f'SELECT * FROM "{table}"', timestamp_field="event_timestamp",
                          created_timestamp_field="created", connection=connection)
    return hw.FeatureView("pg_stats", entities=[DRIVER], source=source,
                          schema=[hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int64)])


def test_sql_source_joins_point_in_time(tmp_path: Path, postgres_url: str, pg_table: str) -> None:
    engine = engine_for(tmp_path, postgres_url)
    try:
        schema = engine.source_schema(sql_view(pg_table).source)
        assert schema.names == ["driver_id", "event_timestamp", "created", "conv_rate", "trips"]
        assert str(schema.field("conv_rate").type) == "double"
        times = [hours(-1), hours(1), hours(2.5), hours(5)]
        job = engine.get_historical_features(entity_rows(times, [1, 1, 1, 2]),
                                             [request(sql_view(pg_table))])
        result = job.to_arrow()
        assert result.column("conv_rate").to_pylist() == [None, 0.1, 0.3, 0.9]
        assert result.column("trips").to_pylist() == [None, 10, 30, 90]
        query = "SELECT driver_id, event_timestamp FROM pg_stats ORDER BY trips"
        by_query = engine.get_historical_features(
            query, [request(sql_view(pg_table))], tables={"pg_stats": sql_view(pg_table).source})
        assert by_query.to_arrow().column("trips").to_pylist() == [10, 30, 30, 50, 90]
    finally:
        engine.close()


def test_unknown_connection_is_a_config_error(tmp_path: Path, postgres_url: str) -> None:
    engine = engine_for(tmp_path, postgres_url)
    try:
        with pytest.raises(hw.ConfigError, match=r"connection 'other' is not defined.*Fix"):
            engine.source_schema(sql_view("t", connection="other").source)
    finally:
        engine.close()


def test_unreachable_server_names_host_and_fix(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, "postgresql://postgres@127.0.0.1:1/test")
    try:
        with pytest.raises(hw.StoreUnavailableError, match=r"127\.0\.0\.1:1 .*Fix: start"):
            engine.source_schema(sql_view("t").source)
    finally:
        engine.close()


def test_bad_query_is_a_data_error(tmp_path: Path, postgres_url: str) -> None:
    engine = engine_for(tmp_path, postgres_url)
    try:
        with pytest.raises(hw.DataError, match=r"PostgreSQL refused the query.*Fix"):
            engine.source_schema(sql_view(f"missing_{uuid.uuid4().hex[:8]}").source)
    finally:
        engine.close()


def test_time_filter_runs_in_postgres(tmp_path: Path, postgres_url: str, pg_table: str) -> None:
    """Rows after the latest entity time are never read: here reading one would divide by
    zero in PostgreSQL."""
    query = (f'SELECT driver_id, event_timestamp, created, conv_rate, CASE WHEN '
             f"event_timestamp > '2024-01-01 12:00+00' THEN 1 / (trips - trips) ELSE trips END "
             f'AS trips FROM "{pg_table}"')
    source = hw.SQLSource(query, timestamp_field="event_timestamp",
                          created_timestamp_field="created", connection="warehouse")
    view = hw.FeatureView("pg_stats", entities=[DRIVER], source=source,
                          schema=[hw.Field("trips", hw.Int64)])
    engine = engine_for(tmp_path, postgres_url)
    try:
        early = engine.get_historical_features(entity_rows([hours(5)], [2]), [request(view)])
        assert early.to_arrow().column("trips").to_pylist() == [90]
        late = engine.get_historical_features(entity_rows([hours(30)], [2]), [request(view)])
        with pytest.raises(hw.DataError, match=r"PostgreSQL refused the query"):
            late.to_arrow()
    finally:
        engine.close()
