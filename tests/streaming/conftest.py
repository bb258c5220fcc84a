"""A repo whose views cover every kind of source a push meets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import headwater as hw

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DRIVER = hw.Entity("driver", join_keys=["driver_id"])
STAMP = pa.timestamp("us", "UTC")


def base_rows() -> pa.Table:
    return pa.table({
        "driver_id": pa.array([1001, 1002], pa.int64()),
        "event_timestamp": pa.array([T0, T0], STAMP),
        "created": pa.array([T0, T0], STAMP),
        "conv_rate": [0.5, 0.6],
        "trips": pa.array([5, 6], pa.int32()),
        "unused": ["x", "y"],
    })


def views() -> list[hw.FeatureView]:
    schema = [hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int64)]
    return [
        hw.FeatureView("stats", entities=[DRIVER], schema=schema, ttl=timedelta(days=1),
                       source=hw.FileSource("data/stats/", "event_timestamp", "created")),
        hw.FeatureView("globbed", entities=[DRIVER], schema=schema,
                       source=hw.FileSource("data/globbed/*.parquet", "event_timestamp",
                                            "created")),
        hw.FeatureView("single", entities=[DRIVER], schema=schema,
                       source=hw.FileSource("data/single.parquet", "event_timestamp")),
        hw.FeatureView("csv_stats", entities=[DRIVER], schema=schema,
                       source=hw.FileSource("data/stats.csv", "event_timestamp")),
        hw.FeatureView("offline_only", entities=[DRIVER], schema=schema, online=False,
                       source=hw.FileSource("data/stats/", "event_timestamp", "created")),
    ]


def make_repo(folder: Path, online: str = "", project: str = "push_test") -> Path:
    data = folder / "data"
    (data / "stats").mkdir(parents=True)
    (data / "globbed").mkdir()
    (folder / "headwater.yaml").write_text(f"project: {project}\n{online}")
    table = base_rows()
    pq.write_table(table, data / "stats" / "part-0.parquet")
    pq.write_table(table, data / "globbed" / "part-0.parquet")
    pq.write_table(table, data / "single.parquet")
    pacsv.write_csv(table, data / "stats.csv")
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Iterator[hw.FeatureStore]:
    with hw.FeatureStore(make_repo(tmp_path / "repo")) as fs:
        fs.apply([DRIVER, *views()])
        yield fs
