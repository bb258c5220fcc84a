"""Entity frames: pandas, polars, Arrow and SQL; columns untouched; time and key checks."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import headwater as hw
from headwater.offline.duckdb import DuckDBEngine
from tests.offline.conftest import UTC_US, entity_rows, hours, request, stats_view

TIMES = [hours(2.5), hours(-1), hours(1), hours(2.5), hours(0)]
IDS = [1, 1, 2, 1, 3]
EXPECTED = [0.3, None, 0.9, 0.3, None]


def joined(engine: DuckDBEngine, entity_df: object, **kwargs: object) -> pa.Table:
    job = engine.get_historical_features(entity_df, [request(stats_view())], **kwargs)  # type: ignore[arg-type]
    return job.to_arrow()


def test_arrow_frame_keeps_rows_order_duplicates_and_labels(engine: DuckDBEngine) -> None:
    entity = entity_rows(TIMES, IDS)
    result = joined(engine, entity)
    assert result.column_names == ["driver_id", "event_timestamp", "label", "conv_rate", "trips"]
    assert result.select(entity.column_names).equals(entity)
    assert result.column("conv_rate").to_pylist() == EXPECTED
    assert result.column("trips").to_pylist() == [30, None, 90, 30, None]
    assert result.schema.field("trips").type == pa.int64()


def test_pandas_and_polars_frames_give_the_same_result(engine: DuckDBEngine) -> None:
    entity = entity_rows(TIMES, IDS)
    expected = joined(engine, entity)
    from_pandas = joined(engine, entity.to_pandas())
    from_polars = joined(engine, pl.from_arrow(entity))
    for result in (from_pandas, from_polars):
        assert result.column("conv_rate").to_pylist() == EXPECTED
        assert result.column("label").to_pylist() == expected.column("label").to_pylist()
    frame = engine.get_historical_features(entity.to_pandas(), [request(stats_view())])
    assert frame.to_pandas()["label"].tolist() == [0, 1, 2, 3, 4]


def test_entity_columns_of_any_type_come_back_untouched(engine: DuckDBEngine) -> None:
    entity = pa.table({
        "driver_id": pa.array(IDS, pa.int32()),
        "event_timestamp": pa.array(TIMES, pa.timestamp("ns", "Europe/Paris")),
        "city": pa.array(["a", "b", "a", "c", "b"]).dictionary_encode(),
        "tags": pa.array([[1], [], None, [2, 3], [4]], pa.list_(pa.int16())),
        "note": pa.array(["x", None, "y", "z", "w"], pa.large_string()),
        "amount": pa.array(["1.50", "2.00", "3.25", "0", "9"]).cast(pa.decimal128(10, 2)),
    })
    result = joined(engine, entity)
    assert result.select(entity.column_names).equals(entity)
    assert result.column("conv_rate").to_pylist() == EXPECTED


@pytest.mark.parametrize("form", ["aware", "naive", "paris", "iso_z", "iso_offset", "iso_naive"])
def test_time_forms_are_the_same_instants(engine: DuckDBEngine, form: str) -> None:
    aware = entity_rows(TIMES, IDS)
    column = aware.column("event_timestamp")
    converted = {
        "aware": column,
        "naive": column.cast(pa.timestamp("us")),
        "paris": column.cast(pa.timestamp("ms", "Europe/Paris")),
        "iso_z": pa.array([t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in TIMES]),
        "iso_offset": pa.array([(t + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
                                for t in TIMES]),
        "iso_naive": pa.array([t.strftime("%Y-%m-%d %H:%M:%S") for t in TIMES]),
    }[form]
    entity = aware.set_column(1, "event_timestamp", converted)
    result = joined(engine, entity)
    assert result.column("conv_rate").to_pylist() == EXPECTED
    assert result.column("event_timestamp").equals(entity.column("event_timestamp"))


def test_unparseable_entity_times_are_an_error(engine: DuckDBEngine) -> None:
    entity = entity_rows(TIMES, IDS).set_column(
        1, "event_timestamp", pa.array(["2024-01-01", "tomorrow", None, "x", "y"]))
    with pytest.raises(hw.DataError, match=r"entity frame.*'event_timestamp'.*'tomorrow'.*Fix"):
        joined(engine, entity)


def test_mixed_zone_entity_times_are_an_error(engine: DuckDBEngine) -> None:
    values = ["2024-01-01T01:00:00Z", "2024-01-01T01:00:00", "2024-01-01T01:00:00+01:00",
              "2024-01-01", None]
    entity = entity_rows(TIMES, IDS).set_column(1, "event_timestamp", pa.array(values))
    with pytest.raises(hw.DataError, match=r"mixes values with a time zone.*Fix"):
        joined(engine, entity)


def test_time_column_is_found_or_named(engine: DuckDBEngine) -> None:
    entity = entity_rows(TIMES, IDS).rename_columns(["driver_id", "asof", "label"])
    assert joined(engine, entity).column("conv_rate").to_pylist() == EXPECTED
    two = entity.append_column("signup", entity.column("asof"))
    with pytest.raises(hw.DataError, match=r"several timestamp columns \(asof, signup\)"):
        joined(engine, two)
    result = joined(engine, two, timestamp_field="asof")
    assert result.column("conv_rate").to_pylist() == EXPECTED
    with pytest.raises(hw.DataError, match=r"timestamp_field 'when' is not a column"):
        joined(engine, two, timestamp_field="when")
    none = pa.table({"driver_id": [1], "label": [0]})
    with pytest.raises(hw.DataError, match=r"no timestamp column among driver_id, label"):
        joined(engine, none)


def test_missing_join_key_names_view_key_and_fix(engine: DuckDBEngine) -> None:
    entity = entity_rows(TIMES, IDS).rename_columns(["driver", "event_timestamp", "label"])
    with pytest.raises(hw.DataError,
                       match=r"join key 'driver_id' of feature view 'driver_stats'.*Fix: add"):
        joined(engine, entity)


def test_key_type_mismatch_is_an_error(engine: DuckDBEngine) -> None:
    entity = entity_rows(TIMES, IDS)
    text_keys = entity.set_column(0, "driver_id", entity.column("driver_id").cast(pa.string()))
    with pytest.raises(hw.DataError, match=r"join key 'driver_id' has type string.*int64"):
        joined(engine, text_keys)
    float_keys = entity.set_column(0, "driver_id", entity.column("driver_id").cast(pa.float64()))
    with pytest.raises(hw.DataError, match=r"join key 'driver_id' has type double"):
        joined(engine, float_keys)


def test_feature_name_clash_with_an_entity_column(engine: DuckDBEngine) -> None:
    entity = entity_rows(TIMES, IDS).append_column("trips", pa.array([0] * 5))
    with pytest.raises(hw.DataError, match=r"column 'trips' would be overwritten.*full_feature"):
        joined(engine, entity)
    job = engine.get_historical_features(entity, [request(stats_view(), prefix=True)])
    assert job.to_arrow().column_names[-2:] == ["driver_stats__conv_rate", "driver_stats__trips"]


def test_null_times_and_empty_frames(engine: DuckDBEngine) -> None:
    result = joined(engine, entity_rows([None, hours(3)], [1, 1]))
    assert result.column("conv_rate").to_pylist() == [None, 0.3]
    empty = joined(engine, entity_rows([], []))
    assert empty.num_rows == 0
    assert empty.column_names[-2:] == ["conv_rate", "trips"]


def test_sql_query_frame_sees_registered_views(engine: DuckDBEngine) -> None:
    view = stats_view()
    query = """
        SELECT driver_id, event_timestamp + INTERVAL 30 MINUTE AS event_timestamp,
               trips > 15 AS busy
        FROM driver_stats ORDER BY created DESC
    """
    job = engine.get_historical_features(query, [request(view, prefix=True)],
                                         tables={"driver_stats": view.source})
    result = job.to_arrow()
    assert result.column_names == ["driver_id", "event_timestamp", "busy",
                                   "driver_stats__conv_rate", "driver_stats__trips"]
    assert result.column("driver_stats__trips").to_pylist() == [30, 30, 90, 10]
    assert result.schema.field("event_timestamp").type == UTC_US


def test_bad_sql_query_is_a_data_error(engine: DuckDBEngine) -> None:
    with pytest.raises(hw.DataError,
                       match=r"entity query: (DuckDB|Spark) cannot run the query.*Fix"):
        engine.get_historical_features("SELECT * FROM nowhere", [request(stats_view())],
                                       tables={"driver_stats": stats_view().source})


def test_pandas_conversion_problems_are_data_errors(engine: DuckDBEngine) -> None:
    frame = pd.DataFrame({"driver_id": [1, "x"], "event_timestamp": TIMES[:2]})
    with pytest.raises(hw.DataError, match=r"cannot be converted to Arrow"):
        joined(engine, frame)
    with pytest.raises(hw.DataError, match=r"expected a pandas or polars DataFrame"):
        joined(engine, [{"driver_id": 1}])


def test_duplicate_column_names_are_data_errors(engine: DuckDBEngine) -> None:
    entity = entity_rows(TIMES, IDS)
    frame = entity.to_pandas()
    frame.columns = ["driver_id", "event_timestamp", "driver_id"]
    arrow = pa.table([entity.column(0), entity.column(1), entity.column(0)],
                     names=["driver_id", "event_timestamp", "driver_id"])
    for duplicated in (frame, arrow):
        with pytest.raises(hw.DataError,
                           match=r"entity frame: duplicate column name\(s\) \['driver_id'\].*Fix"):
            joined(engine, duplicated)
