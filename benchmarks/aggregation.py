"""Benchmark: an aggregation backfill against a hand-written DuckDB window query.

``events`` trip events of ``entities`` drivers over 30 days (``trip_events`` from
:mod:`headwater.testing.data`, in four Parquet files) feed a view with two windowed
aggregations, the mean fare over 1 hour (1-minute tiles) and the trip count over 7 days
(1-hour tiles); ``entity_rows`` entity rows at random drivers and microsecond times ask for
both.

* **headwater**: ``FeatureStore.get_historical_features(...).to_arrow()`` on a repo where
  the view is applied: entity order kept, every entity column passed through, values cast
  to their declared dtypes.
* **baseline**: the query a person would write directly in DuckDB, in one statement: the
  distinct (driver, time) of the entity rows put beside the events, one window pass with
  per-row ``RANGE`` frames ``[floor_h(t - W), t)``, joined back to the entity rows::

      WITH p AS (SELECT DISTINCT driver_id, epoch_us(event_timestamp) AS t FROM entity),
      u AS (SELECT driver_id, t, true AS probe, NULL::DOUBLE AS fare FROM p
            UNION ALL SELECT driver_id, epoch_us(ts), false, fare FROM read_parquet(...)),
      w AS (SELECT driver_id, t, avg(fare) OVER (... RANGE BETWEEN t - floor_1m(t - 1h)
            PRECEDING AND 1 PRECEDING), count(fare) OVER (...) FROM u QUALIFY probe)
      SELECT e.*, w.* FROM entity e LEFT JOIN w ON ...

  collected with ``to_arrow_table()``. It does not keep the entity order.

Each side runs in a fresh process (``python -m benchmarks.aggregation SIDE REPO``), times
only the operation, reports its own peak resident memory (:func:`benchmarks.measure.peak_mb`)
and a checksum of the numbers it computed (sum of the counts, sum of the means), so the two
sides are seen to compute the same values.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from benchmarks.measure import child_report, peak_mb, text_table

VIEW = "driver_trips"
MEAN = "fare_mean_1h"
COUNT = "trip_count_7d"
HOUR_US = 3_600_000_000
# (name, function, window, granularity) in microseconds, as the view defines them
WINDOWS = ((MEAN, "avg", HOUR_US, 60_000_000), (COUNT, "count", 168 * HOUR_US, HOUR_US))
FILES = 4


@dataclass(frozen=True)
class Size:
    """How much data a run uses."""

    entities: int
    events: int
    entity_rows: int


SIZES = {
    "tiny": Size(50, 20_000, 1_000),
    "small": Size(1_000, 1_000_000, 100_000),
    "full": Size(10_000, 10_000_000, 1_000_000),
}


@dataclass(frozen=True)
class Result:
    """The backfill measured on both sides."""

    rows: int
    baseline_rows: int
    headwater_s: float
    baseline_s: float
    headwater_mb: float
    baseline_mb: float
    same_values: bool

    @property
    def ratio(self) -> float:
        return self.headwater_s / self.baseline_s if self.baseline_s > 0 else float("inf")


def prepare(repo: Path, size: Size) -> None:
    """Write the repo: headwater.yaml, the events in Parquet files, the entity rows, and
    apply the entity and view to its registry."""
    import pyarrow.parquet as pq

    import headwater as hw
    from headwater.testing.data import DEFAULT_START, driver_entity_rows, trip_events

    folder = repo / "data" / "trips"
    folder.mkdir(parents=True, exist_ok=True)
    (repo / "headwater.yaml").write_text("project: bench_aggregation\n")
    end = DEFAULT_START + timedelta(days=30)
    events = trip_events(size.entities, size.events, DEFAULT_START, end)
    step = -(-events.num_rows // FILES)
    for part in range(FILES):
        pq.write_table(events.slice(part * step, step), folder / f"part-{part}.parquet")
    del events
    pq.write_table(driver_entity_rows(size.entity_rows, size.entities, DEFAULT_START, end),
                   repo / "entity.parquet")
    driver = hw.Entity("driver", join_keys=["driver_id"])
    view = hw.FeatureView(
        VIEW, entities=[driver], source=hw.FileSource("data/trips", timestamp_field="ts"),
        schema=[hw.Field("fare", hw.Float64)],
        aggregations=[
            hw.Aggregation("fare", "mean", timedelta(hours=1), name=MEAN),
            hw.Aggregation("fare", "count", timedelta(days=7), timedelta(hours=1), name=COUNT),
        ])
    with hw.FeatureStore(repo) as store:
        store.apply([driver, view])


def run_headwater(repo: Path) -> tuple[float, object]:
    """Seconds and the result of ``get_historical_features(...).to_arrow()``."""
    import pyarrow.parquet as pq

    import headwater as hw

    entity = pq.read_table(repo / "entity.parquet")
    with hw.FeatureStore(repo) as store:
        start = time.perf_counter()
        table = store.get_historical_features(
            entity, [f"{VIEW}:{MEAN}", f"{VIEW}:{COUNT}"]).to_arrow()
        return time.perf_counter() - start, table


def baseline_query() -> str:
    """The hand-written window query (module docstring)."""
    def frame(window: int, granularity: int) -> str:
        x = f"(t - {window})"
        tail = f"({x} - (({x} % {granularity}) + {granularity}) % {granularity})"
        return (f"PARTITION BY driver_id ORDER BY t RANGE BETWEEN "
                f"(CASE WHEN probe THEN t - {tail} ELSE 0 END) PRECEDING AND 1 PRECEDING")

    windows = ", ".join(f"{fn}(fare) OVER ({frame(w, h)}) AS {name}"
                        for name, fn, w, h in WINDOWS)
    return f"""
        WITH p AS (SELECT DISTINCT driver_id, epoch_us(event_timestamp) AS t FROM entity),
        u AS (SELECT driver_id, t, true AS probe, NULL::DOUBLE AS fare FROM p
              UNION ALL
              SELECT driver_id, epoch_us(ts), false, fare FROM read_parquet($files)),
        w AS (SELECT driver_id, t, {windows} FROM u QUALIFY probe)
        SELECT e.*, w.{MEAN}, w.{COUNT} FROM entity e
        LEFT JOIN w ON e.driver_id = w.driver_id AND epoch_us(e.event_timestamp) = w.t"""


def run_baseline(repo: Path) -> tuple[float, object]:
    """Seconds and the result of the hand-written DuckDB window query."""
    import duckdb
    import pyarrow.parquet as pq

    entity = pq.read_table(repo / "entity.parquet")
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    con.register("entity", entity)
    files = sorted(str(p) for p in (repo / "data" / "trips").glob("*.parquet"))
    start = time.perf_counter()
    table = con.sql(baseline_query(), params={"files": files}).to_arrow_table()
    seconds = time.perf_counter() - start
    con.close()
    return seconds, table


def checksum(table: object) -> tuple[int, float]:
    """Sum of the counts and sum of the means: equal when both sides agree."""
    import pyarrow as pa
    import pyarrow.compute as pc

    assert isinstance(table, pa.Table)
    counts = pc.sum(table.column(COUNT)).as_py() or 0
    means = pc.sum(table.column(MEAN)).as_py() or 0.0
    return int(counts), float(means)


def measure(side: str, repo: Path) -> dict[str, float]:
    """Run one side in a fresh process and return what it reported."""
    return child_report("aggregation", side, repo)


def run(size: Size, repeat: int = 1, workdir: Path | None = None) -> Result:
    """Prepare the data for ``size`` and measure both sides ``repeat`` times each, after one
    unrecorded warm-up run per side."""
    sides = ("headwater", "baseline")
    with tempfile.TemporaryDirectory(prefix="headwater-bench-", dir=workdir) as tmp:
        repo = Path(tmp)
        prepare(repo, size)
        os.sync()  # flush the freshly written files first: writeback would skew the timings
        for side in sides:
            measure(side, repo)
        runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        for _ in range(repeat):
            for side in sides:  # alternate, so drift in the machine hits both alike
                runs[side].append(measure(side, repo))
    hw, base = runs["headwater"], runs["baseline"]
    same = all(r["count_sum"] == base[0]["count_sum"]
               and abs(r["mean_sum"] - base[0]["mean_sum"]) <= 1e-9 * abs(base[0]["mean_sum"])
               for r in hw)
    return Result(
        rows=int(hw[0]["rows"]), baseline_rows=int(base[0]["rows"]),
        headwater_s=statistics.median(r["seconds"] for r in hw),
        baseline_s=statistics.median(r["seconds"] for r in base),
        headwater_mb=max(r["peak_mb"] for r in hw),
        baseline_mb=max(r["peak_mb"] for r in base),
        same_values=same,
    )


def table(result: Result) -> str:
    """The result as a fixed-width text table."""
    header = ("operation", "rows", "headwater s", "baseline s", "ratio", "target",
              "headwater peak MB", "baseline peak MB", "same values")
    line = [f"get_historical_features, {MEAN} + {COUNT}", f"{result.rows:,}",
            f"{result.headwater_s:.2f}", f"{result.baseline_s:.2f}", f"{result.ratio:.2f}x",
            "<= 2x", f"{result.headwater_mb:,.0f}", f"{result.baseline_mb:,.0f}",
            "yes" if result.same_values else "NO"]
    out = [text_table(header, [line])]
    if result.baseline_rows != result.rows:
        out.append(f"note: baseline returned {result.baseline_rows:,} rows")
    return "\n".join(out)


def main(argv: list[str]) -> None:
    """Child process: ``SIDE REPO`` -> one JSON line with seconds, rows, peak_mb and the
    checksum of the values."""
    side, repo = argv[0], Path(argv[1])
    seconds, result = (run_headwater if side == "headwater" else run_baseline)(repo)
    counts, means = checksum(result)
    rows = result.num_rows  # type: ignore[attr-defined]
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mb": peak_mb(),
                      "count_sum": counts, "mean_sum": means}))


if __name__ == "__main__":
    main(sys.argv[1:])
