"""A team switches ``headwater.yaml`` to ``offline: {engine: spark}`` and gets the same
training frames, online values and predictions as on DuckDB, with Spark DataFrames in and
out of ``get_historical_features``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

import headwater as hw
from headwater.offline.spark import SparkEngine
from headwater.testing.models import FEATURE_NAMES, applied_store, churn_data, churn_repo
from tests.offline.engines import spark_session

CUSTOMERS = 40
DAYS = 16


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[hw.FeatureStore,
                                                                      hw.FeatureStore]]:
    """The churn repo with ``churn`` trained and promoted on DuckDB, then the same repo
    opened with ``offline: {engine: spark}`` (same registry and artifacts)."""
    repo = churn_repo(tmp_path_factory.mktemp("spark_store") / "repo", customers=CUSTOMERS,
                      days=DAYS)
    duck = applied_store(repo)
    run = duck.train("churn")
    duck.promote("churn", run.version)
    spark_session()  # the engine borrows the test process's session
    (repo / "headwater.yaml").write_text(
        "project: churn_demo\noffline:\n  engine: spark\n  master: local[2]\n"
        "  spark_conf:\n    spark.sql.shuffle.partitions: '2'\n"
        "online: {type: sqlite, path: .headwater/spark_online.db}\n")
    spark = hw.FeatureStore(repo)
    try:
        yield duck, spark
    finally:
        spark.close()
        duck.close()


def entity_frame(rows: int = 30) -> pa.Table:
    features, _ = churn_data(CUSTOMERS, DAYS)
    start = features.column("ts")[0].as_py()
    ids = [1 + i % CUSTOMERS for i in range(rows)] + [9999]
    times = [start + timedelta(days=2 + i % (DAYS - 2), hours=i % 23) for i in range(rows)]
    times.append(start + timedelta(days=3))
    return pa.table({"customer_id": pa.array(ids, pa.int64()),
                     "event_timestamp": pa.array(times, pa.timestamp("us", "UTC")),
                     "note": [f"n{i}" for i in range(rows + 1)]})


def test_the_store_opens_the_spark_engine(stores: tuple[hw.FeatureStore, hw.FeatureStore]
                                          ) -> None:
    _, spark = stores
    frame = entity_frame(3)
    spark.get_historical_features(frame, spark.get_feature_service("churn_features")).to_arrow()
    assert isinstance(spark._offline, SparkEngine)
    assert spark._offline.spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_spark_dataframes_in_and_out_give_the_duckdb_frame(
        stores: tuple[hw.FeatureStore, hw.FeatureStore]) -> None:
    duck, spark = stores
    service = "churn_features"
    frame = entity_frame()
    expected = duck.get_historical_features(frame, duck.get_feature_service(service)).to_arrow()

    from_arrow = spark.get_historical_features(frame, spark.get_feature_service(service))
    assert from_arrow.to_arrow().equals(expected)

    session = spark_session()
    given = session.createDataFrame(frame)
    job = spark.get_historical_features(given, spark.get_feature_service(service))
    result = job.to_spark()
    assert type(result).__name__ == "DataFrame"  # a Spark DataFrame: nothing collected yet
    assert result.columns == expected.column_names
    collected = result.toArrow()
    assert collected.column("customer_id").to_pylist() == frame.column(
        "customer_id").to_pylist()
    for name in FEATURE_NAMES:
        assert collected.column(name).to_pylist() == expected.column(name).to_pylist()
    assert job.to_arrow().select(FEATURE_NAMES).equals(expected.select(FEATURE_NAMES))


def test_materialize_on_spark_serves_the_latest_rows(
        stores: tuple[hw.FeatureStore, hw.FeatureStore]) -> None:
    duck, spark = stores
    features, _ = churn_data(CUSTOMERS, DAYS)
    start = features.column("ts")[0].as_py()
    end = start + timedelta(days=DAYS - 1)
    results = spark.materialize(start - timedelta(days=1), end)
    assert sum(r.rows for r in results) == CUSTOMERS
    rows = [{"customer_id": 1}, {"customer_id": CUSTOMERS}]
    online = spark.get_online_features(spark.get_feature_service("churn_features"), rows,
                                     now=end).to_dict()
    frame = pa.table({"customer_id": pa.array([1, CUSTOMERS], pa.int64()),
                      "event_timestamp": pa.array([end, end], pa.timestamp("us", "UTC"))})
    offline = duck.get_historical_features(
        frame, duck.get_feature_service("churn_features")).to_arrow()
    for name in FEATURE_NAMES:
        assert online[name] == offline.column(name).to_pylist()


def test_batch_inference_on_spark_gives_the_duckdb_predictions(
        stores: tuple[hw.FeatureStore, hw.FeatureStore]) -> None:
    duck, spark = stores
    frame = entity_frame()
    on_duck = duck.predict("churn@production", frame).to_arrow()
    on_spark = spark.predict("churn@production", frame).to_arrow()
    assert on_spark.column_names == on_duck.column_names
    assert on_spark.column("prediction").to_pylist() == on_duck.column("prediction").to_pylist()
    np.testing.assert_array_equal(on_spark.column("probability").to_numpy(),
                                  on_duck.column("probability").to_numpy())
    assert on_spark.column("prediction").null_count == 0
