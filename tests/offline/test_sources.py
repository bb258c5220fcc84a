"""Reading FileSources: Parquet files, folders, globs and CSV; ingestion order; source times."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.offline.duckdb import DuckDBEngine
from tests.offline.conftest import (
    DRIVER,
    UTC_US,
    entity_rows,
    hours,
    request,
    stats_table,
    stats_view,
)

TIMES = [hours(-1), hours(0), hours(1), hours(2), hours(2.5), hours(9)]
EXPECTED = [None, 0.1, 0.1, 0.3, 0.3, 0.3]  # hour 2 has two rows; created picks 0.3


def conv_rates(engine: DuckDBEngine, view: hw.FeatureView) -> list[object]:
    result = engine.get_historical_features(entity_rows(TIMES), [request(view)]).to_arrow()
    return result.column("conv_rate").to_pylist()


def test_parquet_file(engine: DuckDBEngine) -> None:
    assert conv_rates(engine, stats_view()) == EXPECTED


def test_folder_of_parquet_is_read_recursively(repo: Path, engine: DuckDBEngine) -> None:
    folder = repo / "data" / "stats_parts" / "nested"
    folder.mkdir(parents=True)
    table = stats_table()
    pq.write_table(table.slice(0, 2), repo / "data" / "stats_parts" / "a.parquet")
    pq.write_table(table.slice(2), folder / "b.parquet")
    (folder / "notes.txt").write_text("not data")
    assert conv_rates(engine, stats_view("data/stats_parts")) == EXPECTED


def test_glob(repo: Path, engine: DuckDBEngine) -> None:
    table = stats_table()
    for i in range(4):
        pq.write_table(table.slice(i, 1), repo / "data" / f"part-{i}.parquet")
    assert conv_rates(engine, stats_view("data/part-*.parquet")) == EXPECTED


def test_csv(repo: Path, engine: DuckDBEngine) -> None:
    pcsv.write_csv(stats_table(), repo / "data" / "stats.csv")
    assert conv_rates(engine, stats_view("data/stats.csv")) == EXPECTED


def tie_table(values: list[int]) -> pa.Table:
    """Rows of driver 1, all at hour 1, no created column: only ingestion order decides."""
    return pa.table({
        "driver_id": pa.array([1] * len(values), pa.int64()),
        "event_timestamp": pa.array([hours(1)] * len(values), UTC_US),
        "value": pa.array(values, pa.int64()),
    })


def tie_view(path: str) -> hw.FeatureView:
    return hw.FeatureView("ties", entities=[DRIVER],
                          source=hw.FileSource(path, timestamp_field="event_timestamp"),
                          schema=[hw.Field("value", hw.Int64)])


def last_value(engine: DuckDBEngine, path: str) -> object:
    view = tie_view(path)
    result = engine.get_historical_features(entity_rows([hours(1), hours(5)]), [request(view)])
    values = result.to_arrow().column("value").to_pylist()
    assert values[0] == values[1]
    return values[0]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_ties_go_to_the_last_file_then_the_last_row(repo: Path, engine: DuckDBEngine,
                                                    fmt: str) -> None:
    folder = repo / "data" / "ties"
    folder.mkdir()
    n = 20_000  # many tied rows across files, read by several threads
    for part in range(3):
        table = tie_table(list(range(part * n, (part + 1) * n)))
        if fmt == "csv":
            pcsv.write_csv(table, folder / f"part-{part}.csv")
        else:
            pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=1000)
    assert last_value(engine, f"data/ties/part-*.{fmt}") == 3 * n - 1


def test_missing_file_names_the_path_and_fix(engine: DuckDBEngine) -> None:
    source = hw.FileSource("data/nope.parquet", timestamp_field="event_timestamp")
    with pytest.raises(hw.DataError, match=r"data/nope\.parquet.*Fix"):
        engine.source_schema(source)
    with pytest.raises(hw.DataError, match=r"data/nope\.parquet"):
        engine.get_historical_features(entity_rows([hours(1)]),
                                       [request(stats_view("data/nope.parquet"))])


def test_glob_without_match(engine: DuckDBEngine) -> None:
    source = hw.FileSource("data/*.pq", timestamp_field="event_timestamp")
    with pytest.raises(hw.DataError, match=r"no file matches path 'data/\*\.pq'"):
        engine.source_schema(source)


def test_source_schema_reads_types(repo: Path, engine: DuckDBEngine) -> None:
    schema = engine.source_schema(stats_view().source)
    assert schema == stats_table().schema
    pcsv.write_csv(stats_table(), repo / "data" / "stats.csv")
    csv_schema = engine.source_schema(stats_view("data/stats.csv").source)
    assert csv_schema.names == stats_table().schema.names
    assert csv_schema.field("trips").type == pa.int64()


def test_naive_source_times_are_utc(repo: Path, engine: DuckDBEngine) -> None:
    table = stats_table()
    naive = table.set_column(1, "event_timestamp", table.column(1).cast(pa.timestamp("us")))
    naive = naive.set_column(2, "created", naive.column(2).cast(pa.timestamp("ns")))
    pq.write_table(naive, repo / "data" / "naive.parquet")
    assert conv_rates(engine, stats_view("data/naive.parquet")) == EXPECTED


def test_iso_string_source_times_are_parsed(repo: Path, engine: DuckDBEngine) -> None:
    table = stats_table()
    text = [t.isoformat() for t in table.column("event_timestamp").to_pylist()]
    text[0] = text[0].replace("+00:00", "Z")
    parsed = table.set_column(1, "event_timestamp", pa.array(text))
    pq.write_table(parsed, repo / "data" / "text.parquet")
    assert conv_rates(engine, stats_view("data/text.parquet")) == EXPECTED


def test_mixed_zones_in_a_csv_source_are_an_error(repo: Path, engine: DuckDBEngine) -> None:
    (repo / "data" / "mixed.csv").write_text(
        "driver_id,event_timestamp,created,conv_rate,trips\n"
        "1,2024-01-01T00:00:00Z,2024-01-01T00:00:00Z,0.1,1\n"
        "1,2024-01-01T01:00:00,2024-01-01T01:00:00Z,0.2,2\n"
    )
    job = engine.get_historical_features(entity_rows([hours(1)]),
                                         [request(stats_view("data/mixed.csv"))])
    with pytest.raises(hw.DataError, match=r"'event_timestamp' mixes values with a time zone"):
        job.to_arrow()


def test_unparseable_source_times_are_an_error(repo: Path, engine: DuckDBEngine) -> None:
    table = stats_table()
    bad = table.set_column(1, "event_timestamp", pa.array(["2024-01-01", "soon", "x", "y"]))
    pq.write_table(bad, repo / "data" / "bad.parquet")
    job = engine.get_historical_features(entity_rows([hours(1)]),
                                         [request(stats_view("data/bad.parquet"))])
    with pytest.raises(hw.DataError, match=r"not an ISO-8601 timestamp: 'soon'"):
        job.to_arrow()


def test_timestamp_features_come_back_as_utc(repo: Path, engine: DuckDBEngine) -> None:
    table = pa.table({
        "driver_id": pa.array([1], pa.int64()),
        "event_timestamp": pa.array([hours(0)], UTC_US),
        "last_trip": pa.array([hours(-1).replace(tzinfo=None)], pa.timestamp("ms")),
    })
    pq.write_table(table, repo / "data" / "trips.parquet")
    view = hw.FeatureView("trips", entities=[DRIVER],
                          source=hw.FileSource("data/trips.parquet",
                                               timestamp_field="event_timestamp"),
                          schema=[hw.Field("last_trip", hw.Timestamp)])
    result = engine.get_historical_features(entity_rows([hours(1)]), [request(view)]).to_arrow()
    assert result.schema.field("last_trip").type == UTC_US
    assert result.column("last_trip").to_pylist() == [hours(-1)]


@pytest.mark.parametrize("path", ["data/pushed", "data/pushed/*.parquet"])
def test_pushed_files_come_after_the_others_in_push_time_order(
        repo: Path, engine: DuckDBEngine, path: str) -> None:
    folder = repo / "data" / "pushed"
    folder.mkdir()
    # by name, 'stats' sorts last and push-10 before push-9; by ingestion, the file not
    # written by push comes first, then pushes by the time in their names
    pq.write_table(tie_table([1]), folder / "stats.parquet")
    pq.write_table(tie_table([3]), folder / f"push-{10:019d}-0a1b2c3d.parquet")
    pq.write_table(tie_table([2]), folder / "push-9-4e5f6a7b.parquet")
    assert last_value(engine, path) == 3
