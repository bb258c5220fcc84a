"""What only the Spark engine has: its session, Spark DataFrames in and out, and the
errors around them (the shared conformance suite covers the rest)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import headwater as hw
from headwater.config import parse_settings
from headwater.errors import ConfigError, HeadwaterError
from headwater.offline import open_engine as open_configured
from headwater.offline.spark import SparkEngine
from headwater.offline.spark_rows import PRUNE_KEYS
from tests.offline.conftest import entity_rows, hours, request, stats_view
from tests.offline.engines import open_engine, spark_session
from tests.offline.test_aggregate import HOUR, frame, txn_view, write_txns


@pytest.fixture
def spark_engine(repo: Path) -> Iterator[SparkEngine]:
    engine = open_engine("spark", repo)
    assert isinstance(engine, SparkEngine)
    yield engine
    engine.close()


def test_open_engine_reads_the_engine_from_the_settings(repo: Path) -> None:
    spark_session()
    settings = parse_settings({"project": "p", "offline": {"engine": "spark"}}, repo)
    engine = open_configured(settings)
    try:
        assert isinstance(engine, SparkEngine)
        assert engine.spark.conf.get("spark.sql.session.timeZone") == "UTC"
    finally:
        engine.close()
    # the borrowed session keeps running after the engine closed
    assert spark_session().range(3).count() == 3


def test_missing_pyspark_names_the_extra(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # what an install without it gives
    settings = parse_settings({"project": "p", "offline": {"engine": "spark"}}, repo)
    with pytest.raises(ConfigError, match=r"pip install 'headwater\[spark\]'"):
        open_configured(settings)


def test_a_spark_frame_in_gives_a_spark_frame_out_in_row_order(spark_engine: SparkEngine) -> None:
    times = [hours(3), hours(0.5), None, hours(2), hours(1)]
    entity = entity_rows(times, [1, 1, 1, 1, 2])
    given = spark_engine.spark.createDataFrame(entity.to_pylist(), schema=(
        "driver_id long, event_timestamp timestamp, label long"))
    job = spark_engine.get_historical_features(given, [request(stats_view(), prefix=True)])
    frame = job.to_spark()
    assert frame.columns == ["driver_id", "event_timestamp", "label",
                             "driver_stats__conv_rate", "driver_stats__trips"]
    rows = frame.toArrow()
    assert rows.column("label").to_pylist() == [0, 1, 2, 3, 4]
    assert rows.column("driver_stats__trips").to_pylist() == [30, 10, None, 30, 90]
    collected = job.to_arrow()
    assert collected.column("driver_stats__trips").to_pylist() == [30, 10, None, 30, 90]
    assert collected.schema.field("driver_stats__trips").type == pa.int64()
    reordered = job.with_feature_order(["driver_stats__trips", "driver_stats__conv_rate"])
    assert reordered.to_spark().columns[-2:] == ["driver_stats__trips",
                                                 "driver_stats__conv_rate"]


def test_string_times_in_a_spark_frame_are_parsed_and_checked(
        spark_engine: SparkEngine) -> None:
    given = spark_engine.spark.createDataFrame(
        [(1, "2024-01-01T03:00:00Z"), (2, "2024-01-01 01:00:00+00:00")],
        schema="driver_id long, event_timestamp string")
    result = spark_engine.get_historical_features(given, [request(stats_view())]).to_arrow()
    assert result.column("trips").to_pylist() == [30, 90]
    mixed = spark_engine.spark.createDataFrame(
        [(1, "2024-01-01T03:00:00Z"), (2, "2024-01-01 01:00:00")],
        schema="driver_id long, event_timestamp string")
    with pytest.raises(hw.DataError, match=r"'event_timestamp' mixes values with a time zone"):
        spark_engine.get_historical_features(mixed, [request(stats_view())]).to_arrow()


def test_an_entity_query_runs_in_spark_sql_over_registered_views(
        spark_engine: SparkEngine) -> None:
    view = stats_view()
    query = ("SELECT driver_id, event_timestamp + INTERVAL 30 MINUTES AS event_timestamp "
             "FROM driver_stats WHERE driver_id = 1")
    job = spark_engine.get_historical_features(query, [request(view)],
                                               tables={"driver_stats": view.batch_source})
    result = job.to_arrow()
    assert sorted(result.column("trips").to_pylist()) == [10, 30, 30]


def test_to_spark_on_duckdb_says_which_engine_has_it(repo: Path) -> None:
    engine = open_engine("duckdb", repo)
    try:
        job = engine.get_historical_features(entity_rows([hours(1)]), [request(stats_view())])
        with pytest.raises(HeadwaterError, match=r"to_spark\(\).*engine: spark"):
            job.to_spark()
    finally:
        engine.close()


def _plan(job: Any) -> str:
    return str(job.to_spark()._jdf.queryExecution().executedPlan().toString())


def test_only_the_rows_of_the_entity_keys_reach_the_join(spark_engine: SparkEngine) -> None:
    """A local entity frame of few keys: the view's rows are semi-joined to its keys,
    broadcast, before the sort (a 1-row retrieval no longer sorts the whole view). Many
    keys, or a Spark frame: no pruning (it cost more than it saved). The values are the
    same either way."""
    entity = entity_rows([hours(3), hours(2)], [1, 1])
    job = spark_engine.get_historical_features(entity, [request(stats_view())])
    plan = _plan(job)
    assert "LeftSemi" in plan and "BroadcastExchange" in plan, plan
    assert job.to_arrow().column("trips").to_pylist() == [30, 30]
    given = spark_engine.spark.createDataFrame(entity.to_pylist(), schema=(
        "driver_id long, event_timestamp timestamp, label long"))
    job = spark_engine.get_historical_features(given, [request(stats_view())])
    assert "LeftSemi" not in _plan(job)
    assert job.to_arrow().column("trips").to_pylist() == [30, 30]
    many = entity_rows([hours(3)] * (PRUNE_KEYS + 1), range(PRUNE_KEYS + 1))
    job = spark_engine.get_historical_features(many, [request(stats_view())])
    assert "LeftSemi" not in _plan(job)
    assert job.to_arrow().column("trips").to_pylist()[:3] == [None, 30, 90]


def test_only_the_events_of_the_entity_keys_reach_the_window_join(
        repo: Path, spark_engine: SparkEngine) -> None:
    write_txns(repo, [(1, 0, 1.0), (1, 0.5, 4.0), (2, 0.5, 100.0)])
    view = txn_view([hw.Aggregation("amount", "sum", 2 * HOUR, HOUR, name="total")])
    job = spark_engine.get_historical_features(frame([1.75]), [request(view)])
    plan = _plan(job)
    assert "LeftSemi" in plan and "BroadcastExchange" in plan, plan
    assert job.to_arrow().column("total").to_pylist() == [5.0]
