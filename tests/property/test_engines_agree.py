"""The DuckDB and Spark engines give the same training frames on the same random data.

Seeded random histories with many ties (few keys, few distinct event times, equal created
times, null created times), split over several Parquet files (the ingestion order), read
by three views at once: a latest-value view with a ttl and created times, one keyed by a
string, and an aggregated view with every function over an integer and a float column at
several windows. Random entity rows with duplicates, unknown and null keys, null times.
Both engines must give identical frames: same columns, types and values, floating-point
aggregates within 1e-9 relative.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.definitions.aggregation import FUNCTION_NAMES
from headwater.offline.base import OfflineEngine, ViewRequest
from tests.offline.engines import open_engine

T0 = datetime(2024, 1, 1, tzinfo=UTC)
UTC_US = pa.timestamp("us", "UTC")
DRIVER = hw.Entity("driver", join_keys=["driver_id"])
CITY = hw.Entity("city", join_keys=["city"])
CITIES = ["AMS", "BER", "CDG", "DUB"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agree")


@pytest.fixture(scope="module")
def engines(repo: Path) -> Iterator[tuple[OfflineEngine, OfflineEngine]]:
    duck = open_engine("duckdb", repo, "agree")
    spark = open_engine("spark", repo, "agree")
    yield duck, spark
    spark.close()
    duck.close()


def minutes(values: np.ndarray) -> pa.Array:
    return pa.array([T0 + timedelta(minutes=int(m)) for m in values], UTC_US)


def write_history(repo: Path, name: str, rng: np.random.Generator, rows: int) -> hw.FileSource:
    """Rows over few keys and times, with ties and null created times, in three files."""
    folder = repo / name
    folder.mkdir()
    ts = rng.choice([0, 5, 10, 15, 30, 45, 60, 90], size=rows)
    created = ts + rng.choice([0, 0, 1, 2], size=rows)
    created_nulls = rng.random(rows) < 0.2
    table = pa.table({
        "driver_id": pa.array(rng.integers(1, 5, size=rows), pa.int64()),
        "city": pa.array(rng.choice(CITIES, size=rows).tolist(), pa.string()),
        "ts": minutes(ts),
        "created": pa.array([None if n else T0 + timedelta(minutes=int(c))
                             for c, n in zip(created, created_nulls, strict=True)], UTC_US),
        "x": pa.array([None if rng.random() < 0.1 else int(v)
                       for v in rng.integers(-1000, 1000, size=rows)], pa.int64()),
        "y": pa.array([None if rng.random() < 0.1 else float(v)
                       for v in rng.normal(0, 100, size=rows)], pa.float64()),
        "flag": pa.array((rng.random(rows) < 0.5).tolist(), pa.bool_()),
    })
    cuts = sorted(rng.choice(np.arange(1, rows), size=2, replace=False).tolist())
    for part, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, rows], strict=True)):
        pq.write_table(table.slice(lo, hi - lo), folder / f"part-{part}.parquet")
    return hw.FileSource(name, timestamp_field="ts", created_timestamp_field="created")


def views(source: hw.FileSource) -> list[hw.FeatureView]:
    schema = [hw.Field("x", hw.Int64), hw.Field("y", hw.Float64), hw.Field("flag", hw.Bool)]
    aggregations = [
        hw.Aggregation(column, function, timedelta(minutes=window), timedelta(minutes=step),
                       name=f"{function}_{column}_{window}")
        for function in FUNCTION_NAMES for column in ("x", "y")
        for window, step in ((30, 5), (60, 15))
    ]
    return [
        hw.FeatureView("by_driver", entities=[DRIVER], source=source, schema=schema,
                       ttl=timedelta(minutes=20)),
        hw.FeatureView("by_city", entities=[CITY], source=source, schema=schema),
        hw.FeatureView("windows", entities=[DRIVER], source=source, schema=schema[:2],
                       aggregations=aggregations),
    ]


def entity_frame(rng: np.random.Generator, rows: int) -> pa.Table:
    keys = [None if rng.random() < 0.05 else int(k) for k in rng.integers(1, 7, size=rows)]
    times = [None if rng.random() < 0.05 else T0 + timedelta(minutes=int(m))
             for m in rng.choice([0, 3, 5, 10, 12, 15, 20, 30, 35, 45, 60, 75, 90, 120],
                                 size=rows)]
    return pa.table({
        "driver_id": pa.array(keys, pa.int64()),
        "city": pa.array(rng.choice([*CITIES, "ZRH"], size=rows).tolist(), pa.string()),
        "event_timestamp": pa.array(times, UTC_US),
        "label": pa.array(rng.integers(0, 2, size=rows), pa.int64()),
    })


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duckdb_and_spark_give_identical_frames(
        repo: Path, engines: tuple[OfflineEngine, OfflineEngine], seed: int) -> None:
    rng = np.random.default_rng(seed)
    source = write_history(repo, f"history_{seed}", rng, rows=120)
    requests = [ViewRequest(v, v.features, tuple(f"{v.name}__{f.name}" for f in v.features))
                for v in views(source)]
    entity = entity_frame(rng, rows=150)
    duck, spark = engines

    expected = duck.get_historical_features(entity, requests).to_arrow()
    got = spark.get_historical_features(entity, requests).to_arrow()

    assert got.schema == expected.schema
    assert got.num_rows == entity.num_rows
    for name in expected.column_names:
        left, right = got.column(name).to_pylist(), expected.column(name).to_pylist()
        assert all(same(a, b) for a, b in zip(left, right, strict=True)), name
    assert sum(v is not None for v in expected.column("by_driver__x").to_pylist()) > 10
    assert sum(v is not None for v in expected.column("windows__mean_y_60").to_pylist()) > 10


def test_latest_rows_and_events_agree(repo: Path,
                                      engines: tuple[OfflineEngine, OfflineEngine]) -> None:
    rng = np.random.default_rng(7)
    source = write_history(repo, "history_latest", rng, rows=80)
    duck, spark = engines
    for view in views(source)[:2]:
        start, end = T0 + timedelta(minutes=5), T0 + timedelta(minutes=60)
        keys = list(view.join_keys)
        expected = duck.latest_rows(view, start, end).read_all().sort_by(
            [(k, "ascending") for k in keys])
        got = spark.latest_rows(view, start, end).read_all().sort_by(
            [(k, "ascending") for k in keys])
        assert got.equals(expected)
        assert spark.read_events(view, start, end).read_all().equals(
            duck.read_events(view, start, end).read_all())
