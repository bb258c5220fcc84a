"""Benchmark: a point-in-time training frame against a hand-written DuckDB ASOF join.

A view of ``entities x hours`` hourly rows with 10 features (``driver_stats`` from
:mod:`headwater.testing.data`, one Parquet file) is joined to ``entity_rows`` entity rows.
Two variants of the view differ only in their ``created`` times: written to the second (as
generated), or scattered to the microsecond. Headwater breaks ties between rows with equal
event times by created time and ingestion order, with an ASOF key it packs into a BIGINT
when the data's time units allow (the first variant, at the full size) and a slower struct
key otherwise (the second).

* **headwater**: ``FeatureStore.get_historical_features(...).to_arrow()`` on a repo where
  the view is applied (with its ``created`` column, so ties are resolved by created time and
  ingestion order), entity order kept, result streamed and collected.
* **baseline**: the query a person would write directly in DuckDB, in one statement::

      SELECT e.*, f.conv_rate, ... FROM entity e
      ASOF LEFT JOIN read_parquet('stats.parquet') f
        ON e.driver_id = f.driver_id AND e.event_timestamp >= f.event_timestamp

  collected with ``to_arrow_table()``. It neither keeps the entity order nor breaks ties.

Each side runs in a fresh process (``python -m benchmarks.historical SIDE REPO VIEW``) that loads
the entity rows from Parquet, times only the operation, and reports its own peak resident
memory (``VmHWM``, see :func:`benchmarks.measure.peak_mb`), so the figures do not leak into
each other.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import peak_mb

FEATURES = ["conv_rate", "trips", *(f"f{i}" for i in range(2, 10))]


@dataclass(frozen=True)
class Size:
    """How much data a run uses."""

    entities: int
    hours: int
    entity_rows: int

    @property
    def view_rows(self) -> int:
        return self.entities * self.hours


SIZES = {
    "tiny": Size(50, 24, 1_000),
    "small": Size(1_000, 720, 100_000),
    "full": Size(10_000, 720, 1_000_000),
}


VARIANTS = {
    "driver_stats": "created to the second",
    "driver_stats_us": "created to the microsecond",
}


def prepare(repo: Path, size: Size) -> None:
    """Write the repo: headwater.yaml, the views' Parquet files, the entity rows, and apply
    the entity and views to its registry."""
    from datetime import timedelta

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    import headwater as hw
    from headwater.testing.data import DEFAULT_START, driver_entity_rows, driver_stats

    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "headwater.yaml").write_text("project: bench\n")
    stats = driver_stats(size.entities, size.hours, n_features=len(FEATURES))
    pq.write_table(stats, repo / "data" / "driver_stats.parquet")
    jitter = np.random.default_rng(1).integers(0, 1_000_000, size=stats.num_rows)
    created = pc.add(stats.column("created").cast(pa.int64()), pa.array(jitter))
    scattered = stats.set_column(2, "created", created.cast(pa.timestamp("us", "UTC")))
    pq.write_table(scattered, repo / "data" / "driver_stats_us.parquet")
    del stats, scattered
    end = DEFAULT_START + timedelta(hours=size.hours)
    pq.write_table(driver_entity_rows(size.entity_rows, size.entities, DEFAULT_START, end),
                   repo / "entity.parquet")
    driver = hw.Entity("driver", join_keys=["driver_id"])
    views = [hw.FeatureView(
        name, entities=[driver],
        source=hw.FileSource(f"data/{name}.parquet", timestamp_field="event_timestamp",
                             created_timestamp_field="created"),
        schema=[hw.Field(f, hw.Int64 if f == "trips" else hw.Float64) for f in FEATURES],
    ) for name in VARIANTS]
    with hw.FeatureStore(repo) as store:
        store.apply([driver, *views])


def run_headwater(repo: Path, view: str) -> tuple[float, int]:
    """Seconds and output rows of ``get_historical_features(...).to_arrow()``."""
    import pyarrow.parquet as pq

    import headwater as hw

    entity = pq.read_table(repo / "entity.parquet")
    with hw.FeatureStore(repo) as store:
        start = time.perf_counter()
        job = store.get_historical_features(entity, [f"{view}:{f}" for f in FEATURES])
        rows = job.to_arrow().num_rows
        return time.perf_counter() - start, rows


def run_baseline(repo: Path, view: str) -> tuple[float, int]:
    """Seconds and output rows of the hand-written DuckDB ASOF join."""
    import duckdb
    import pyarrow.parquet as pq

    entity = pq.read_table(repo / "entity.parquet")
    con = duckdb.connect()
    con.register("entity", entity)
    features = ", ".join(f"f.{f}" for f in FEATURES)
    query = (f"SELECT e.*, {features} FROM entity e "
             "ASOF LEFT JOIN read_parquet($path) f "
             "ON e.driver_id = f.driver_id AND e.event_timestamp >= f.event_timestamp")
    start = time.perf_counter()
    path = str(repo / "data" / f"{view}.parquet")
    rows = con.sql(query, params={"path": path}).to_arrow_table().num_rows
    seconds = time.perf_counter() - start
    con.close()
    return seconds, rows


def main(argv: list[str]) -> None:
    """Child process: ``SIDE REPO VIEW`` -> one JSON line with seconds, rows and peak_mb."""
    side, repo, view = argv[0], Path(argv[1]), argv[2]
    seconds, rows = (run_headwater if side == "headwater" else run_baseline)(repo, view)
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mb": peak_mb()}))


if __name__ == "__main__":
    main(sys.argv[1:])
