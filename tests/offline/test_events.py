"""read_events: a view's raw events in a half-open time range, in ingestion order."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.offline.duckdb import DuckDBEngine
from headwater.offline.events import ROW_BITS
from headwater.offline.file_order import push_file_name
from tests.offline.conftest import UTC_US, hours, stats_table, stats_view

CARD = hw.Entity("card", join_keys=["card_id"])


def txn_table(card: list[int], at: list[float], amount: list[int | None]) -> pa.Table:
    return pa.table({
        "card_id": pa.array(card, pa.int64()),
        "ts": pa.array([hours(h) for h in at], UTC_US),
        "amount": pa.array(amount, pa.int32()),
        "merchant": pa.array([f"m{c}" for c in card]),
    })


def txn_view(source: hw.Source, amount: hw.DType = hw.Int64) -> hw.FeatureView:
    return hw.FeatureView(
        "card_txn", entities=[CARD], source=source,
        schema=[hw.Field("amount", amount), hw.Field("merchant", hw.String)],
        aggregations=[hw.Aggregation("amount", "sum", timedelta(hours=1))],
    )


def file_view(path: str = "data/txns", amount: hw.DType = hw.Int64) -> hw.FeatureView:
    return txn_view(hw.FileSource(path, timestamp_field="ts"), amount)


def read(engine: DuckDBEngine, view: hw.FeatureView, start: float = -100,
         end: float = 100) -> pa.Table:
    return engine.read_events(view, hours(start), hours(end)).read_all()


@pytest.fixture
def txns(repo: Path) -> Path:
    """Three files: a batch export (b.parquet), another one sorting first by path
    (a.parquet), and a pushed file, which comes after both whatever its name."""
    folder = repo / "data" / "txns"
    folder.mkdir()
    pq.write_table(txn_table([1, 2], [0, 1], [10, 20]), folder / "b.parquet")
    pq.write_table(txn_table([1, 1, 2], [2, 0, 3], [30, None, 40]), folder / "a.parquet")
    pq.write_table(txn_table([2], [0.5], [50]), folder / push_file_name(1, "0a"))
    return folder


def test_events_come_in_ingestion_order_with_a_packed_sequence(
        txns: Path, engine: DuckDBEngine) -> None:
    table = read(engine, file_view())
    assert table.column("amount").to_pylist() == [30, None, 40, 10, 20, 50]
    seq = table.column("__hw_seq").to_pylist()
    assert seq == [0, 1, 2, 1 << ROW_BITS, (1 << ROW_BITS) + 1, 2 << ROW_BITS]


def test_the_sequence_does_not_depend_on_the_range(txns: Path, engine: DuckDBEngine) -> None:
    whole = read(engine, file_view())
    parts = [read(engine, file_view(), a, b) for a, b in ((-100, 1), (1, 2.5), (2.5, 100))]
    pieces = {(r["__hw_seq"], r["amount"]) for p in parts for r in p.to_pylist()}
    assert pieces == {(r["__hw_seq"], r["amount"]) for r in whole.to_pylist()}
    assert sum(p.num_rows for p in parts) == whole.num_rows


def test_the_range_includes_its_start_and_excludes_its_end(
        txns: Path, engine: DuckDBEngine) -> None:
    table = read(engine, file_view(), 0.5, 2)
    assert sorted(table.column("__hw_ts").to_pylist()) == [hours(0.5), hours(1)]
    assert read(engine, file_view(), 2, 2).num_rows == 0
    naive = engine.read_events(file_view(), hours(2).replace(tzinfo=None),
                               hours(3).replace(tzinfo=None)).read_all()
    assert naive.column("__hw_ts").to_pylist() == [hours(2)]


def test_schema_casts_values_and_created_is_null_without_a_created_column(
        txns: Path, engine: DuckDBEngine) -> None:
    table = read(engine, file_view())
    assert table.schema == pa.schema([
        pa.field("card_id", pa.int64()), pa.field("__hw_ts", UTC_US),
        pa.field("__hw_created", UTC_US), pa.field("__hw_seq", pa.int64()),
        pa.field("amount", pa.int64()), pa.field("merchant", pa.string())])
    assert table.column("__hw_created").null_count == table.num_rows
    assert read(engine, file_view(amount=hw.Float64)).schema.field("amount").type == (
        pa.float64())


def test_created_times_and_every_schema_column(engine: DuckDBEngine) -> None:
    table = read(engine, stats_view())
    assert table.column_names == ["driver_id", "__hw_ts", "__hw_created", "__hw_seq",
                                  "conv_rate", "trips"]
    assert table.column("__hw_created").to_pylist() == stats_table().column(
        "created").to_pylist()
    assert table.column("__hw_seq").to_pylist() == [0, 1, 2, 3]


def test_push_and_stream_sources_read_their_batch_source(
        txns: Path, engine: DuckDBEngine) -> None:
    batch = hw.FileSource("data/txns", timestamp_field="ts")
    expected = read(engine, file_view())
    for source in (hw.PushSource("txn_push", batch),
                   hw.StreamSource("transactions", "ts", batch)):
        assert read(engine, txn_view(source)).equals(expected)


def test_csv_sources_order_by_row(repo: Path, engine: DuckDBEngine) -> None:
    pcsv.write_csv(txn_table([3, 1, 2], [2, 1, 0], [1, 2, 3]), repo / "data" / "t.csv")
    table = read(engine, file_view("data/t.csv"))
    assert table.column("card_id").to_pylist() == [3, 1, 2]
    assert table.column("__hw_seq").to_pylist() == [0, 1, 2]
    assert table.column("__hw_ts").to_pylist() == [hours(2), hours(1), hours(0)]


def test_a_value_that_does_not_fit_its_dtype_names_the_view_and_column(
        repo: Path, engine: DuckDBEngine) -> None:
    pq.write_table(pa.table({
        "driver_id": pa.array([1], pa.int64()),
        "event_timestamp": pa.array([hours(0)], UTC_US),
        "created": pa.array([hours(0)], UTC_US),
        "conv_rate": pa.array([0.5]),
        "trips": pa.array([2**63 + 5], pa.uint64()),
    }), repo / "data" / "huge.parquet")
    with pytest.raises(hw.DataError, match=r"driver_stats.*trips"):
        read(engine, stats_view("data/huge.parquet"))


def test_batches_are_bounded(repo: Path) -> None:
    from headwater.config import parse_settings

    n = 1000
    pq.write_table(pa.table({
        "driver_id": pa.array([i % 7 for i in range(n)], pa.int64()),
        "event_timestamp": pa.array([hours(i / 10) for i in range(n)], UTC_US),
        "created": pa.array([hours(i / 10) for i in range(n)], UTC_US),
        "conv_rate": pa.array([float(i) for i in range(n)]),
        "trips": pa.array(list(range(n)), pa.int64()),
    }), repo / "data" / "many.parquet")
    engine = DuckDBEngine(parse_settings({"project": "offline_test"}, repo), batch_size=64)
    try:
        reader = engine.read_events(stats_view("data/many.parquet"), hours(0), hours(n))
        sizes = [b.num_rows for b in reader]
    finally:
        engine.close()
    assert sum(sizes) == n and max(sizes) <= 64 * 2
