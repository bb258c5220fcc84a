"""Fixtures for the offline engine: a repo folder with driver data, an engine over it, and
helpers to request features without a registry."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.offline.base import ViewRequest
from headwater.offline.duckdb import DuckDBEngine
from tests.offline.engines import ENGINES, open_engine

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DRIVER = hw.Entity("driver", join_keys=["driver_id"])
UTC_US = pa.timestamp("us", "UTC")


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def stats_table() -> pa.Table:
    """Driver 1 at hours 0 and 2 (two rows at hour 2, told apart by created), driver 2 at
    hour 1."""
    return pa.table({
        "driver_id": pa.array([1, 1, 1, 2], pa.int64()),
        "event_timestamp": pa.array([hours(0), hours(2), hours(2), hours(1)], UTC_US),
        "created": pa.array([hours(0), hours(3), hours(2.5), hours(1)], UTC_US),
        "conv_rate": pa.array([0.1, 0.3, 0.2, 0.9]),
        "trips": pa.array([10, 30, 20, 90], pa.int64()),
    })


def stats_view(path: str = "data/stats.parquet", *, ttl: timedelta | None = None,
               name: str = "driver_stats", **source: object) -> hw.FeatureView:
    return hw.FeatureView(
        name, entities=[DRIVER],
        source=hw.FileSource(path, timestamp_field="event_timestamp",
                             created_timestamp_field="created", **source),  # type: ignore[arg-type]
        schema=[hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int64)], ttl=ttl,
    )


def request(view: hw.FeatureView, prefix: bool = False) -> ViewRequest:
    names = tuple(f"{view.name}__{f.name}" if prefix else f.name for f in view.features)
    return ViewRequest(view, view.features, names)


def entity_rows(times: Sequence[datetime | None], ids: Sequence[int] | None = None) -> pa.Table:
    ids = list(ids) if ids is not None else [1] * len(times)
    return pa.table({
        "driver_id": pa.array(ids, pa.int64()),
        "event_timestamp": pa.array(times, UTC_US),
        "label": pa.array(range(len(times)), pa.int64()),
    })


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "headwater.yaml").write_text("project: offline_test\n")
    (tmp_path / "data").mkdir()
    pq.write_table(stats_table(), tmp_path / "data" / "stats.parquet")
    return tmp_path


@pytest.fixture(params=ENGINES)
def engine_kind(request: pytest.FixtureRequest) -> str:
    """Each offline engine in turn: the conformance suite runs on DuckDB and on Spark."""
    return str(request.param)


@pytest.fixture
def engine(repo: Path, engine_kind: str) -> Iterator[DuckDBEngine]:
    engine = open_engine(engine_kind, repo)
    yield engine  # type: ignore[misc]
    engine.close()
