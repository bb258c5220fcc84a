"""Benchmark: how ``get_historical_features`` time grows with the feature rows, on DuckDB
(out-of-core) and on Spark in local mode.

For each size ``N`` of feature rows (full: 1M, 10M, 100M; small: 1M, 10M; tiny: 10k, 100k),
:mod:`benchmarks.scaling_data` writes (once, cached) ``N / 100`` drivers x 100 hourly rows
with 10 features in several Parquet files, and a fixed entity frame (1M rows; 10k at tiny)
at random drivers and times. Three engines run the same retrieval, each in a fresh process
(``python -m benchmarks.scaling ENGINE DATA WORKDIR``):

* **duckdb**: ``store.get_historical_features(entity, features).to_parquet(out)`` with
  ``offline: {engine: duckdb, memory_limit: 4GB, threads: 2}``: at 100M rows the join's
  inputs (about 10 GB) do not fit, so DuckDB spills to its temp directory.
* **spark**: the same call with ``offline: {engine: spark, master: local[2]}`` and
  :data:`SPARK_CONF` (8 GB driver). Measured only when the installed Headwater accepts
  ``engine: spark`` (checked at run time); otherwise its rows say why they were skipped.
  Not at tiny (:data:`SPARK_SIZES`): a JVM start per measurement would dominate CI.
* **baseline**: the hand-written DuckDB ASOF join over the same files with the same memory
  limit, written with ``COPY ... TO 'out.parquet'`` (no entity order, no ties broken: the
  hourly data has no ties, so the values are the same).

The entity frame is read into Arrow before the clock starts, and one 1-row retrieval runs
first (untimed), so the time excludes the JVM and session start (reported apart). Each
process reports its peak resident memory (``VmHWM``) and, for Spark, the peak of the JVM it
started, and an order-independent checksum of the output, so the engines are shown to return
the same frame. The table gives the median of ``repeat`` runs (one run from 100M rows up),
rows/s of feature rows, and the growth of the time against the smallest size.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import child_report, cpu_s, descendants_peak_mb, peak_mb, text_table
from benchmarks.scaling_data import FEATURES, DataSet, dataset

SIZES: dict[str, tuple[int, ...]] = {
    "tiny": (10_000, 100_000),
    "small": (1_000_000, 10_000_000),
    "full": (1_000_000, 10_000_000, 100_000_000),
}
ENTITY_ROWS = {"tiny": 10_000, "small": 1_000_000, "full": 1_000_000}
SPARK_SIZES: dict[str, tuple[int, ...]] = {"tiny": ()}
"""Where Spark runs at fewer sizes than the others: not at tiny (CI), since every measurement
starts a JVM and a session (15-20 s on an idle machine, minutes on a loaded one), which would
dominate the suite; ``--size small`` runs it."""
ENGINES = ("baseline", "duckdb", "spark")
DUCKDB_MEMORY = "4GB"
THREADS = 2
SPARK_MASTER = "local[2]"
SPARK_CONF = {
    "spark.driver.memory": "8g",
    "spark.sql.shuffle.partitions": "64",
    "spark.sql.adaptive.enabled": "true",
}
ONE_RUN_FROM = 100_000_000
"""From this many feature rows up, one run per engine and no warm-up (minutes each)."""


@dataclass(frozen=True)
class Result:
    """One engine at one size: the median time of its runs, or why it was skipped."""

    engine: str
    feature_rows: int
    entity_rows: int
    seconds: float | None = None
    cpu_s: float | None = None
    rows: int | None = None
    peak_mb: float | None = None
    jvm_peak_mb: float | None = None
    startup_s: float | None = None
    checksum: str | None = None
    skipped: str | None = None

    @property
    def rows_per_s(self) -> float | None:
        return None if not self.seconds else self.feature_rows / self.seconds


def spark_unavailable() -> str | None:
    """Why ``offline: {engine: spark}`` cannot run here, or None when it can."""
    from headwater.config import parse_settings
    from headwater.errors import HeadwaterError

    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'headwater[spark]')"
    if importlib.util.find_spec("headwater.offline.spark") is None:
        return "headwater.offline.spark does not exist in this version"
    try:
        parse_settings({"project": "probe", "offline": _offline("spark", Path("."))},
                       Path(tempfile.gettempdir()))
    except HeadwaterError as exc:
        return str(exc)
    return None


def _offline(engine: str, work: Path) -> dict[str, Any]:
    if engine == "spark":
        return {"engine": "spark", "master": SPARK_MASTER, "spark_conf": dict(SPARK_CONF)}
    return {"engine": "duckdb", "memory_limit": DUCKDB_MEMORY, "threads": THREADS,
            "temp_directory": str(work / "spill")}


def run(size: str, repeat: int = 1, workdir: Path | None = None,
        data_root: Path | None = None, engines: tuple[str, ...] = ENGINES) -> list[Result]:
    """Measure ``engines`` (default: all of :data:`ENGINES`) at every feature-row count of
    ``size``; rows grouped by engine, smallest size first."""
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise ValueError(f"unknown engine(s) {sorted(unknown)}; choose from {ENGINES}")
    spark_missing = spark_unavailable() if "spark" in engines else None
    measured: dict[tuple[str, int], Result] = {}
    for n in SIZES[size]:
        data = dataset(n, ENTITY_ROWS[size], data_root)
        for engine in engines:
            if engine == "spark" and spark_missing:
                measured[engine, n] = Result(engine, n, data.entity_rows,
                                             skipped=f"spark engine not available: "
                                                     f"{spark_missing}")
                continue
            if engine == "spark" and n not in SPARK_SIZES.get(size, (n,)):
                measured[engine, n] = Result(engine, n, data.entity_rows,
                                             skipped=f"not run at --size {size}: each Spark "
                                                     "measurement starts a JVM, which would "
                                                     "dominate; --size small runs it")
                continue
            measured[engine, n] = _measure(engine, data, repeat, workdir)
    return [measured[engine, n] for engine in engines for n in SIZES[size]]


def _measure(engine: str, data: DataSet, repeat: int, workdir: Path | None) -> Result:
    runs = 1 if data.feature_rows >= ONE_RUN_FROM else repeat
    reports = []
    with tempfile.TemporaryDirectory(prefix="headwater-scaling-", dir=workdir) as tmp:
        if data.feature_rows < ONE_RUN_FROM and repeat > 1:  # warm the page cache
            child_report("scaling", engine, data.folder, tmp)
        for _ in range(runs):
            reports.append(child_report("scaling", engine, data.folder, tmp))
    if engine == "spark" and not all("Spark" in r["engine_class"] for r in reports):
        raise RuntimeError(f"engine: spark ran on {reports[0]['engine_class']}, not Spark")
    jvm = [r["jvm_peak_mb"] for r in reports if r.get("jvm_peak_mb")]
    print(f"  {engine} at {data.feature_rows:,} feature rows: "
          + ", ".join(f"{r['seconds']:.1f} s" for r in reports), flush=True)
    return Result(
        engine, data.feature_rows, data.entity_rows,
        seconds=statistics.median(r["seconds"] for r in reports),
        cpu_s=statistics.median(r["cpu_s"] for r in reports),
        rows=int(reports[0]["rows"]),
        peak_mb=max(r["peak_mb"] for r in reports),
        jvm_peak_mb=max(jvm) if jvm else None,
        startup_s=statistics.median(r["startup_s"] for r in reports),
        checksum=str(reports[0]["checksum"]),
    )


def table(results: list[Result]) -> str:
    """The results as a text table, with the growth of each engine's time against its
    smallest size and a note for every skipped row or differing checksum."""
    smallest = min(r.feature_rows for r in results)
    first = {r.engine: r.seconds for r in results
             if r.feature_rows == smallest and r.seconds is not None}
    lines, notes = [], []
    baseline = {r.feature_rows: r.checksum for r in results if r.engine == "baseline"}
    for r in results:
        if r.seconds is None:
            lines.append([r.engine, f"{r.feature_rows:,}", f"{r.entity_rows:,}",
                          "skipped", "", "", "", "", "", ""])
            notes.append(f"{r.engine} at {r.feature_rows:,}: {r.skipped}")
            continue
        base = first.get(r.engine)
        growth = f"{r.seconds / base:.1f}x" if base else ""
        same = baseline.get(r.feature_rows)
        lines.append([
            r.engine, f"{r.feature_rows:,}", f"{r.entity_rows:,}", f"{r.seconds:.2f}",
            "" if r.cpu_s is None else f"{r.cpu_s:.1f}",
            f"{r.rows_per_s:,.0f}", f"{r.peak_mb:,.0f}" if r.peak_mb else "",
            f"{r.jvm_peak_mb:,.0f}" if r.jvm_peak_mb else "", growth,
            "" if same is None else ("yes" if same == r.checksum else "NO"),
        ])
        if r.engine == "spark" and r.startup_s is not None:
            notes.append(f"spark at {r.feature_rows:,}: session start and a 1-row retrieval "
                         f"took {r.startup_s:.1f} s before the clock started")
        if r.rows != r.entity_rows:
            notes.append(f"{r.engine} at {r.feature_rows:,} returned {r.rows:,} rows")
    header = ("engine", "feature rows", "entity rows", "seconds", "CPU s", "feature rows/s",
              "peak MB", "JVM peak MB", f"growth vs {_short(smallest)}", "same as baseline")
    return "\n".join([text_table(header, lines), *(f"note: {n}" for n in notes)])


def _short(n: int) -> str:
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n:,}"


def describe(size: str, repeat: int) -> str:
    """The line printed above the table."""
    sizes = ", ".join(f"{n:,}" for n in SIZES[size])
    return (f"scaling, size {size}: {sizes} feature rows (N/100 drivers x 100 hours, 10 "
            f"features, Parquet files of <= 5M rows), {ENTITY_ROWS[size]:,} entity rows; "
            f"get_historical_features(...).to_parquet; duckdb: memory_limit {DUCKDB_MEMORY}, "
            f"{THREADS} threads; spark: {SPARK_MASTER}, driver memory "
            f"{SPARK_CONF['spark.driver.memory']}; median of {repeat} run(s)"
            + (f" after a warm-up (one run, no warm-up, from {ONE_RUN_FROM:,} rows)"
               if repeat > 1 else ", no warm-up") + ", each in a fresh process")


# -- the child process ------------------------------------------------------------------------

def _checksum(path: Path) -> str:
    """An order-independent fingerprint of the output: row count and a sum of row hashes."""
    import duckdb

    cols = ", ".join(["driver_id", "epoch_us(event_timestamp)", *FEATURES])
    con = duckdb.connect()
    try:
        row = con.execute(f"SELECT count(*), sum(hash({cols})::HUGEINT) "
                          "FROM read_parquet($p)", {"p": str(path)}).fetchone()
    finally:
        con.close()
    return "" if row is None else f"{row[0]}:{row[1]}"


def run_headwater(engine: str, data: Path, work: Path) -> dict[str, Any]:
    """Time ``get_historical_features(...).to_parquet`` on a fresh repo over ``data``."""
    import pyarrow.parquet as pq
    import yaml

    import headwater as hw
    from headwater.offline.source_reader import FILE_ROOTS_ENV

    os.environ[FILE_ROOTS_ENV] = str(data)  # the shared data set lives outside the repo
    repo = Path(tempfile.mkdtemp(prefix=f"{engine}-", dir=work))
    try:
        (repo / "headwater.yaml").write_text(yaml.safe_dump(
            {"project": "scaling", "offline": _offline(engine, repo)}))
        driver = hw.Entity("driver", join_keys=["driver_id"])
        view = hw.FeatureView(
            "stats", entities=[driver],
            source=hw.FileSource(str(data / "features") + "/", timestamp_field="event_timestamp",
                                 created_timestamp_field="created"),
            schema=[hw.Field(f, hw.Int64 if f == "trips" else hw.Float64) for f in FEATURES])
        entity = pq.read_table(data / "entity.parquet")
        refs = [f"stats:{f}" for f in FEATURES]
        out = repo / "out.parquet"
        with hw.FeatureStore(repo) as store:
            started = time.perf_counter()
            store.apply([driver, view])
            store.get_historical_features(entity.slice(0, 1), refs).to_parquet(out)
            startup = time.perf_counter() - started
            engine_class = type(store.offline).__name__
            cpu = cpu_s("java")
            started = time.perf_counter()
            rows = store.get_historical_features(entity, refs).to_parquet(out)
            seconds = time.perf_counter() - started
            cpu = cpu_s("java") - cpu
            jvm = descendants_peak_mb("java")
        return {"seconds": seconds, "cpu_s": cpu, "rows": rows, "peak_mb": peak_mb(),
                "jvm_peak_mb": jvm,
                "startup_s": startup, "engine_class": engine_class,
                "checksum": _checksum(out)}
    finally:
        shutil.rmtree(repo, ignore_errors=True)


def run_baseline(data: Path, work: Path) -> dict[str, Any]:
    """Time the hand-written DuckDB ASOF join, written to Parquet with ``COPY``."""
    import duckdb
    import pyarrow.parquet as pq

    entity = pq.read_table(data / "entity.parquet")
    out = Path(tempfile.mkdtemp(prefix="baseline-", dir=work))
    try:
        con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "threads": THREADS,
                                     "temp_directory": str(out / "spill")})
        con.register("entity", entity)
        features = ", ".join(f"f.{f}" for f in FEATURES)
        glob = str(data / "features" / "*.parquet")
        target = out / "out.parquet"
        cpu = cpu_s()
        started = time.perf_counter()
        con.execute(f"COPY (SELECT e.*, {features} FROM entity e "
                    f"ASOF LEFT JOIN read_parquet('{glob}') f "
                    "ON e.driver_id = f.driver_id AND e.event_timestamp >= f.event_timestamp"
                    f") TO '{target}' (FORMAT parquet)")
        seconds = time.perf_counter() - started
        cpu = cpu_s() - cpu
        con.close()
        rows = pq.read_metadata(target).num_rows
        return {"seconds": seconds, "cpu_s": cpu, "rows": rows, "peak_mb": peak_mb(),
                "jvm_peak_mb": None, "startup_s": 0.0, "engine_class": "duckdb",
                "checksum": _checksum(target)}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str]) -> None:
    """Child process: ``ENGINE DATA WORKDIR`` -> one JSON line with the measurement, also
    appended to ``runs.jsonl`` next to the data sets (a history of every measurement)."""
    from datetime import UTC, datetime

    engine, data, work = argv[0], Path(argv[1]), Path(argv[2])
    load = os.getloadavg()
    report = run_baseline(data, work) if engine == "baseline" else \
        run_headwater(engine, data, work)
    print(json.dumps(report))
    entry = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "engine": engine,
             "data": data.name, "load_before": load, "load_after": os.getloadavg(), **report}
    with open(data.parent / "runs.jsonl", "a") as log:
        log.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
