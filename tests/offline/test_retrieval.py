"""Retrieval through the FeatureStore: several views with different keys, ttl, output names,
streaming and the result formats."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.config import parse_settings
from headwater.offline.duckdb import DuckDBEngine
from headwater.testing.data import driver_entity_rows, driver_stats
from tests.offline.conftest import DRIVER, UTC_US, entity_rows, hours, request, stats_view

ORIGIN = hw.Entity("origin", join_keys=["origin"])
ROUTE = hw.Entity("route", join_keys=["origin", "dest"])


@pytest.fixture
def flights_repo(repo: Path) -> Path:
    """Carrier-style data: a view keyed by origin airport and one keyed by (origin, dest)."""
    pq.write_table(pa.table({
        "origin": ["JFK", "JFK", "LAX"],
        "event_timestamp": pa.array([hours(0), hours(2), hours(0)], UTC_US),
        "delay": [5.0, 7.0, 1.0],
    }), repo / "data" / "airports.parquet")
    pq.write_table(pa.table({
        "origin": ["JFK", "JFK"],
        "dest": ["LAX", "SFO"],
        "event_timestamp": pa.array([hours(1), hours(1)], UTC_US),
        "minutes": pa.array([330, 360], pa.int64()),
    }), repo / "data" / "routes.parquet")
    return repo


def views() -> list[hw.FeatureView]:
    airports = hw.FeatureView(
        "airport_stats", entities=[ORIGIN],
        source=hw.FileSource("data/airports.parquet", timestamp_field="event_timestamp"),
        schema=[hw.Field("delay", hw.Float64)], ttl=timedelta(hours=1))
    routes = hw.FeatureView(
        "route_stats", entities=[ROUTE],
        source=hw.FileSource("data/routes.parquet", timestamp_field="event_timestamp"))
    return [airports, routes]


def test_store_joins_views_keyed_by_different_entities(flights_repo: Path) -> None:
    flights = pa.table({
        "driver_id": pa.array([1, 2, 1, 1], pa.int64()),
        "origin": ["JFK", "JFK", "LAX", "JFK"],
        "dest": ["LAX", "SFO", "JFK", "LAX"],
        "event_timestamp": pa.array([hours(2.5), hours(3.5), hours(0.5), hours(0.5)], UTC_US),
    })
    with hw.FeatureStore(flights_repo) as store:
        store.apply([DRIVER, ORIGIN, ROUTE, stats_view(), *views()])
        job = store.get_historical_features(
            flights, ["driver_stats:conv_rate", "airport_stats:delay", "route_stats:minutes"])
        result = job.to_arrow()
    assert result.column_names == [*flights.column_names, "conv_rate", "delay", "minutes"]
    assert result.select(flights.column_names).equals(flights)
    assert result.column("conv_rate").to_pylist() == [0.3, 0.9, 0.1, 0.1]
    # hour 3.5 is more than the 1 hour ttl after the JFK row at hour 2 (hour 2.5 is not)
    assert result.column("delay").to_pylist() == [7.0, None, 1.0, 5.0]
    assert result.column("minutes").to_pylist() == [330, 360, None, None]
    assert result.schema.field("minutes").type == pa.int64()


def test_store_full_feature_names_and_services(flights_repo: Path) -> None:
    service = hw.FeatureService("flight_model", features=[stats_view()[["trips"]], *views()])
    flights = pa.table({
        "driver_id": pa.array([1], pa.int64()), "origin": ["JFK"], "dest": ["LAX"],
        "event_timestamp": pa.array([hours(2)], UTC_US),
    })
    with hw.FeatureStore(flights_repo) as store:
        store.apply([DRIVER, ORIGIN, ROUTE, stats_view(), *views(), service])
        result = store.get_historical_features(flights, service, full_feature_names=True)
        table = result.to_arrow()
    assert table.column_names[4:] == ["driver_stats__trips", "airport_stats__delay",
                                      "route_stats__minutes"]
    assert table.slice(0, 1).to_pylist()[0]["route_stats__minutes"] == 330


def test_store_sql_entity_query_names_views(flights_repo: Path) -> None:
    with hw.FeatureStore(flights_repo) as store:
        store.apply([DRIVER, stats_view()])
        job = store.get_historical_features(
            "SELECT driver_id, event_timestamp FROM driver_stats WHERE trips >= 20",
            ["driver_stats:trips"])
        assert sorted(job.to_arrow().column("trips").to_pylist()) == [30, 30, 90]


def test_ttl_edge_is_included(engine: DuckDBEngine) -> None:
    view = stats_view(ttl=timedelta(hours=1))
    times = [hours(1), hours(1) + timedelta(microseconds=1), hours(3), hours(3.5)]
    result = engine.get_historical_features(entity_rows(times), [request(view)]).to_arrow()
    assert result.column("conv_rate").to_pylist() == [0.1, None, 0.3, None]


def test_results_stream_in_batches(repo: Path) -> None:
    pq.write_table(driver_stats(20, 48), repo / "data" / "drivers.parquet")
    entity = driver_entity_rows(300_000, 25, end=hours(60))
    view = hw.FeatureView(
        "drivers", entities=[DRIVER],
        source=hw.FileSource("data/drivers.parquet", timestamp_field="event_timestamp",
                             created_timestamp_field="created"),
        schema=[hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int64)])
    engine = DuckDBEngine(parse_settings({"project": "t"}, repo))
    try:
        job = engine.get_historical_features(entity, [request(view)])
        batches = list(job.to_batches())
        assert len(batches) > 1
        assert sum(b.num_rows for b in batches) == entity.num_rows
        whole = pa.Table.from_batches(batches)
        assert whole.select(entity.column_names).equals(entity)
        assert whole.equals(job.to_arrow())  # each read runs the query again, same answer
        with job.to_reader() as reader:
            assert reader.schema == whole.schema
        known = whole.filter(pa.compute.less_equal(whole.column("driver_id"), 1020))
        assert known.column("conv_rate").null_count < known.num_rows
    finally:
        engine.close()


def test_to_parquet_pandas_and_polars(engine: DuckDBEngine, tmp_path: Path) -> None:
    entity = entity_rows([hours(2.5), hours(1)])
    job = engine.get_historical_features(entity, [request(stats_view())])
    assert job.to_parquet(tmp_path / "frame.parquet") == 2
    assert pq.read_table(tmp_path / "frame.parquet").equals(job.to_arrow())
    assert job.to_pandas()["conv_rate"].tolist() == [0.3, 0.1]
    assert job.to_polars()["trips"].to_list() == [30, 10]


def test_engine_settings_make_a_spill_directory(tmp_path: Path) -> None:
    settings = parse_settings({"project": "t", "offline": {
        "memory_limit": "512MB", "threads": 1, "temp_directory": "spill"}}, tmp_path)
    engine = DuckDBEngine(settings)
    engine.close()
    assert (tmp_path / "spill").is_dir()
