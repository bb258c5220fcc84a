"""Aggregation features in training frames: each function, the window's edges, empty
windows, nulls, several windows in one view, and the entity frame kept as given."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.definitions.aggregation import FUNCTION_NAMES
from headwater.offline.duckdb import DuckDBEngine
from tests.offline.conftest import UTC_US, hours, request, stats_view

CARD = hw.Entity("card", join_keys=["card_id"])
MERCHANT = hw.Entity("merchant", join_keys=["merchant_id"])
HOUR = timedelta(hours=1)
MINUTES_15 = timedelta(minutes=15)
FLOAT64 = pa.float64()


def write_txns(repo: Path, rows: list[tuple[int, float, object]], *, name: str = "txns.parquet",
               amount: pa.DataType = FLOAT64, merchant: list[str] | None = None) -> None:
    """Rows of (card, hour, amount) in one Parquet file under data/."""
    columns: dict[str, object] = {
        "card_id": pa.array([r[0] for r in rows], pa.int64()),
        "ts": pa.array([hours(r[1]) for r in rows], UTC_US),
        "amount": pa.array([r[2] for r in rows], amount),
    }
    if merchant is not None:
        columns["merchant_id"] = pa.array(merchant)
    pq.write_table(pa.table(columns), repo / "data" / name)


def txn_view(aggregations: list[hw.Aggregation], *, dtype: hw.DType = hw.Float64,
             path: str = "data/txns.parquet", name: str = "card_txn",
             entity: hw.Entity = CARD, created: str | None = None) -> hw.FeatureView:
    return hw.FeatureView(
        name, entities=[entity],
        source=hw.FileSource(path, timestamp_field="ts", created_timestamp_field=created),
        schema=[hw.Field("amount", dtype)], aggregations=aggregations)


def every_function(window: timedelta = 2 * HOUR,
                   granularity: timedelta | None = HOUR) -> list[hw.Aggregation]:
    return [hw.Aggregation("amount", f, window, granularity, name=f) for f in FUNCTION_NAMES]


def frame(times: list[float | None], cards: list[int | None] | None = None) -> pa.Table:
    cards = cards if cards is not None else [1] * len(times)
    return pa.table({
        "card_id": pa.array(cards, pa.int64()),
        "event_timestamp": pa.array([None if t is None else hours(t) for t in times], UTC_US),
        "label": pa.array([f"row{i}" for i in range(len(times))]),
    })


def features(engine: DuckDBEngine, view: hw.FeatureView, entity: pa.Table,
             *more: hw.FeatureView) -> pa.Table:
    return engine.get_historical_features(
        entity, [request(view), *(request(v) for v in more)]).to_arrow()


def test_every_function_over_one_window(repo: Path, engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, 0, 1.0), (1, 0.5, 4.0), (1, 1, 4.0), (1, 1.5, None), (2, 1, 100.0)])
    row = features(engine, txn_view(every_function()), frame([1.75])).to_pylist()[0]
    values = [1.0, 4.0, 4.0]  # hour 1.5 is null; card 2 is another entity
    mean = sum(values) / 3
    variance = sum((v - mean) ** 2 for v in values) / 2
    assert {k: row[k] for k in FUNCTION_NAMES if k not in ("stddev", "variance")} == {
        "count": 3, "sum": 9.0, "mean": 3.0, "min": 1.0, "max": 4.0, "last": 4.0,
        "count_distinct": 2}
    assert math.isclose(row["variance"], variance, rel_tol=1e-12)
    assert math.isclose(row["stddev"], math.sqrt(variance), rel_tol=1e-12)


def test_the_head_excludes_t_and_the_tail_is_aligned_to_the_granularity(
        repo: Path, engine: DuckDBEngine) -> None:
    """Window 1h, tiles of 15 min. At t = 2:10 the window is [1:00, 2:10): the event at
    0:59 is out, 1:00 (the aligned tail, exactly) is in although it is more than an hour
    before t, 2:09 is in and 2:10 (exactly t) is out."""
    write_txns(repo, [(1, 59 / 60, 1.0), (1, 1, 10.0), (1, 2 + 9 / 60, 100.0),
                      (1, 2 + 10 / 60, 1000.0)])
    view = txn_view([hw.Aggregation("amount", "sum", HOUR, MINUTES_15, name="s"),
                     hw.Aggregation("amount", "count", HOUR, MINUTES_15, name="n")])
    result = features(engine, view, frame([2 + 10 / 60, 1, 2 + 11 / 60, 2 + 15 / 60]))
    # 1:00: [0:00, 1:00) holds 0:59 only; 2:11 adds 2:10; 2:15: tail moves to 1:15
    assert result.column("s").to_pylist() == [110.0, 1.0, 1110.0, 1100.0]
    assert result.column("n").to_pylist() == [2, 1, 3, 2]


def test_ties_at_a_tile_boundary_all_count(repo: Path, engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, 1, 1.0), (1, 1, 2.0), (1, 1, 2.0), (1, 2, 8.0)])
    view = txn_view(every_function(HOUR, HOUR))
    row = features(engine, view, frame([2])).to_pylist()[0]  # window [1:00, 2:00)
    assert (row["count"], row["sum"], row["count_distinct"], row["last"]) == (3, 5.0, 2, 2.0)
    assert features(engine, view, frame([1])).column("count").to_pylist() == [0]


def test_empty_windows_give_zero_for_counts_and_sums_and_null_otherwise(
        repo: Path, engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, 0, 5.0), (2, 9, 5.0)])
    view = txn_view(every_function())
    rows = features(engine, view, frame([0, 9, 3], cards=[1, 1, 3])).to_pylist()
    for row in rows:  # at the first event, long after it, and for an unknown card
        assert {k: row[k] for k in FUNCTION_NAMES} == {
            "count": 0, "sum": 0.0, "mean": None, "min": None, "max": None, "stddev": None,
            "variance": None, "last": None, "count_distinct": 0}


def test_nulls_and_nan_are_ignored_and_one_value_has_no_spread(
        repo: Path, engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, 0, None), (1, 0.2, math.nan), (1, 0.4, 3.0), (1, 0.6, None)])
    row = features(engine, txn_view(every_function()), frame([1])).to_pylist()[0]
    assert {k: row[k] for k in FUNCTION_NAMES} == {
        "count": 1, "sum": 3.0, "mean": 3.0, "min": 3.0, "max": 3.0, "stddev": None,
        "variance": None, "last": 3.0, "count_distinct": 1}


def test_several_windows_and_granularities_in_one_view(repo: Path,
                                                       engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, h, float(h)) for h in range(0, 48, 3)])
    view = txn_view([
        hw.Aggregation("amount", "sum", HOUR, name="sum_1h"),
        hw.Aggregation("amount", "sum", timedelta(days=1), name="sum_1d"),
        hw.Aggregation("amount", "count", timedelta(days=1), HOUR, name="count_1d"),
        hw.Aggregation("amount", "max", 6 * HOUR, 3 * HOUR, name="max_6h"),
    ])
    result = features(engine, view, frame([30.5, 40])).to_pylist()
    # t = 30:30: 1h -> [29:30, 30:30) holds 30; 1d (5 min tiles) -> [6:30, 30:30) holds
    # 9..30; 1d (1h tiles) -> [6:00, 30:30) holds 6..30; 6h (3h tiles) -> [24:00, 30:30)
    assert result[0]["sum_1h"] == 30.0
    assert result[0]["sum_1d"] == float(sum(range(9, 31, 3)))
    assert result[0]["count_1d"] == len(range(6, 31, 3))
    assert result[0]["max_6h"] == 30.0
    # t = 40:00: [39, 40) holds 39; [16, 40) holds 18..39; [33, 40) max 39
    assert (result[1]["sum_1h"], result[1]["count_1d"], result[1]["max_6h"]) == (39.0, 8, 39.0)


def test_last_breaks_ties_by_created_then_ingestion_order(repo: Path,
                                                          engine: DuckDBEngine) -> None:
    folder = repo / "data" / "ties"
    folder.mkdir()
    base = {"card_id": pa.array([1, 1], pa.int64()), "ts": pa.array([hours(1)] * 2, UTC_US)}
    pq.write_table(pa.table({**base, "created": pa.array([hours(3), hours(2)], UTC_US),
                             "amount": [1.0, 2.0]}), folder / "a.parquet")
    pq.write_table(pa.table({**base, "created": pa.array([hours(3), None], UTC_US),
                             "amount": [3.0, 4.0]}), folder / "b.parquet")
    view = txn_view([hw.Aggregation("amount", "last", HOUR, name="last")],
                    path="data/ties", created="created")
    # created 3 ties between a.parquet row 0 and b.parquet row 0: the later file wins
    assert features(engine, view, frame([1.5])).column("last").to_pylist() == [3.0]


def test_output_dtypes_follow_the_aggregation(repo: Path, engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, 0, 2), (1, 0.5, 3)], amount=pa.int32())
    names = ["sum", "min", "mean", "last", "count"]
    view = txn_view([hw.Aggregation("amount", f, HOUR, name=f) for f in names],
                    dtype=hw.Int32)
    result = features(engine, view, frame([1]))
    assert [result.schema.field(n).type for n in names] == [
        pa.int64(), pa.int64(), pa.float64(), pa.int32(), pa.int64()]
    assert [result.column(n)[0].as_py() for n in names] == [5, 2, 2.5, 3, 2]


def test_bool_columns_aggregate_as_integers(repo: Path, engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, 0, True), (1, 0.5, False), (1, 0.7, True)], amount=pa.bool_())
    names = ["sum", "max", "mean", "count_distinct", "last"]
    view = txn_view([hw.Aggregation("amount", f, HOUR, name=f) for f in names],
                    dtype=hw.Bool)
    row = features(engine, view, frame([1])).to_pylist()[0]
    assert [row[n] for n in names] == [2, 1, pytest.approx(2 / 3), 2, True]


def test_an_integer_sum_beyond_int64_is_a_data_error(repo: Path, engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, 0, 2**62), (1, 0.5, 2**62)], amount=pa.int64())
    view = txn_view([hw.Aggregation("amount", "sum", HOUR, name="total")], dtype=hw.Int64)
    with pytest.raises(hw.DataError, match=r"card_txn.*total"):
        features(engine, view, frame([1]))


def test_entity_rows_keep_order_duplicates_columns_and_mix_with_latest_values(
        repo: Path, engine: DuckDBEngine) -> None:
    """Driver stats (latest values) and card aggregations in one call; rows without a time
    or a key get nulls from the aggregations, count included."""
    write_txns(repo, [(1, 0, 1.0), (1, 1, 2.0), (2, 0.5, 7.0)])
    view = txn_view([hw.Aggregation("amount", "count", 2 * HOUR, name="n"),
                     hw.Aggregation("amount", "mean", 2 * HOUR, name="m")])
    entity = frame([1.5, 2, 1.5, None, 1.5, 2], cards=[1, 2, 1, 1, None, 1])
    entity = entity.append_column("driver_id", pa.array([1, 1, 2, 1, 1, 2], pa.int64()))
    result = engine.get_historical_features(
        entity, [request(view), request(stats_view())]).to_arrow()
    assert result.select(entity.column_names).equals(entity)
    assert result.column_names == [*entity.column_names, "n", "m", "conv_rate", "trips"]
    assert result.column("n").to_pylist() == [2, 1, 2, None, None, 2]
    assert result.column("m").to_pylist() == [1.5, 7.0, 1.5, None, None, 1.5]
    assert result.column("conv_rate").to_pylist() == [0.1, 0.3, 0.9, None, 0.1, 0.9]


def test_one_source_feeds_views_keyed_by_different_entities(
        repo: Path, engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, 0, 1.0), (2, 0.2, 2.0), (1, 0.4, 4.0), (3, 0.6, 8.0)],
               merchant=["a", "b", "b", "b"])
    aggs = [hw.Aggregation("amount", "sum", HOUR, name="card_sum"),
            hw.Aggregation("amount", "count", HOUR, name="card_n")]
    by_card = txn_view(aggs)
    by_merchant = hw.FeatureView(
        "merchant_txn", entities=[MERCHANT], source=by_card.source,
        schema=[hw.Field("amount", hw.Float64)],
        aggregations=[hw.Aggregation("amount", "sum", HOUR, name="merchant_sum")])
    entity = frame([1, 1, 0.5]).append_column("merchant_id", pa.array(["b", "a", "b"]))
    entity = entity.set_column(0, "card_id", pa.array([1, 3, 2], pa.int64()))
    result = features(engine, by_card, entity, by_merchant)
    assert result.column("card_sum").to_pylist() == [5.0, 8.0, 2.0]
    assert result.column("card_n").to_pylist() == [2, 1, 1]
    assert result.column("merchant_sum").to_pylist() == [14.0, 1.0, 6.0]


def test_a_stream_source_aggregates_its_batch_source(repo: Path, engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, 0, 1.0), (1, 0.5, 2.0)])
    source = hw.StreamSource("transactions", "ts",
                             hw.FileSource("data/txns.parquet", timestamp_field="ts"))
    view = hw.FeatureView("card_txn", entities=[CARD], source=source,
                          schema=[hw.Field("amount", hw.Float64)],
                          aggregations=[hw.Aggregation("amount", "sum", HOUR, name="s")])
    assert features(engine, view, frame([1])).column("s").to_pylist() == [3.0]


def test_entity_times_given_as_strings(repo: Path, engine: DuckDBEngine) -> None:
    write_txns(repo, [(1, -1, 1.0), (1, 0, 2.0), (1, 2, 4.0)])
    view = txn_view([hw.Aggregation("amount", "sum", 2 * HOUR, HOUR, name="s")])
    entity = pa.table({"card_id": pa.array([1, 1], pa.int64()),
                       "at": ["2024-01-01T01:00:00Z", "2024-01-01 05:00:00+02:00"]})
    result = engine.get_historical_features(entity, [request(view)],
                                            timestamp_field="at").to_arrow()
    assert result.column("s").to_pylist() == [3.0, 4.0]  # [-1:00, 1:00) and [1:00, 3:00)
