"""``python -m benchmarks [--size tiny|small|full] [--repeat N] [--suite S]``: print the
benchmark tables.

Each operation is compared with the fastest way to do the same work directly on the engine
(see ARCHITECTURE.md, "Performance budgets"). Suites:

* ``historical``: point-in-time training frames (:mod:`benchmarks.historical`). Every
  measurement runs in a fresh Python process, after one unrecorded warm-up run per side; the
  table shows the median wall time over ``--repeat`` runs and the largest peak resident
  memory.
* ``online``: materialization into SQLite and Redis, and in-process online reads
  (:mod:`benchmarks.online`); needs Redis (``--redis-url``).
* ``http``: ``POST /features`` against a real ``headwater serve`` subprocess
  (:mod:`benchmarks.http`), on the same data as ``online``.
* ``streaming``: Redis Streams -> online tiles throughput on one consumer process, pinned
  to one CPU, next to a raw read-and-ack baseline, and freshness (XADD -> visible online) p50/p99
  (:mod:`benchmarks.streaming`); needs Redis.
* ``aggregation``: a backfill of windowed aggregation features (mean over 1 h, count over
  7 days) next to a hand-written DuckDB window query (:mod:`benchmarks.aggregation`); each
  side in a fresh process, median of ``--repeat`` runs, peak resident memory.
* ``models``: ``POST /predict`` p50/p99 for 1 entity x 10 features and a gradient-boosted
  model against a real ``headwater serve``, the same handler in-process, batch inference
  rows/s next to a direct join + predict, and the time ``train`` adds on top of the fit
  (:mod:`benchmarks.predict`).
* ``drift``: ``hw.detect_drift`` on the data of issue 6, point 9 (20 normal and 5
  categorical columns, 6 of them shifted) next to a plain vectorized numpy computation of the
  same statistics and decision rule (:mod:`benchmarks.drift`): seconds, peak resident memory,
  shifted columns found and false alarms; tiny 20,000 rows a side, small 100,000, full
  100,000 and 1,000,000; each side in a fresh process, median of ``--repeat`` runs.
* ``scaling``: ``get_historical_features(...).to_parquet`` over 1M, 10M and 100M feature
  rows (tiny: 10k and 100k) on DuckDB with a 4 GB memory limit (out-of-core at 100M), on
  Spark local[2] when the installed Headwater has the Spark engine, and a hand-written DuckDB
  ASOF join; time, rows/s, peak memory (and the JVM's) and growth against the smallest size
  (:mod:`benchmarks.scaling`). The generated data is cached in ``$HEADWATER_BENCH_DATA`` or
  ``.bench-data/``. The full size takes tens of minutes (see docs/scaling.md).
* ``load``: closed-loop load on ``POST /features`` and ``POST /predict`` against one real
  ``headwater serve`` (auth on, Redis online store) at 1, 8, 32 and 64 keep-alive
  connections for 60 s each (small 10 s, tiny 2 s at 1 and 4), and at the highest level on
  two workers: requests, errors, req/s, p50/p99/p99.9, server and client CPU; and a floor,
  the same client against uvicorn answering the same bytes with no store
  (:mod:`benchmarks.load`); needs Redis. Any error fails the run (exit status 1).

``make bench`` runs every suite at the full size; CI runs ``--size tiny`` only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks import online
from benchmarks.historical import SIZES, VARIANTS, Size, prepare
from benchmarks.measure import CPU_CHECK_ADDITIONS, child_report, cpu_check_s, text_table

SIDES = ("headwater", "baseline")
SUITES = ("historical", "online", "http", "streaming", "aggregation", "models", "drift",
          "scaling", "load")


@dataclass(frozen=True)
class Result:
    """One operation measured on both sides."""

    operation: str
    rows: int
    baseline_rows: int
    headwater_s: float
    baseline_s: float
    headwater_mb: float
    baseline_mb: float

    @property
    def ratio(self) -> float:
        return self.headwater_s / self.baseline_s if self.baseline_s > 0 else float("inf")


def measure(side: str, repo: Path, view: str) -> dict[str, float]:
    """Run one side on one view in a fresh process and return what it reported."""
    return child_report("historical", side, repo, view)


def run(size: Size, repeat: int = 1, workdir: Path | None = None) -> list[Result]:
    """Prepare the data for ``size`` and measure every operation ``repeat`` times."""
    results = []
    with tempfile.TemporaryDirectory(prefix="headwater-bench-", dir=workdir) as tmp:
        repo = Path(tmp)
        prepare(repo, size)
        os.sync()  # flush the freshly written files first: writeback would skew the timings
        for view, label in VARIANTS.items():
            runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
            for side in SIDES:  # one unrecorded run each, so both read from a warm cache
                measure(side, repo, view)
            for _ in range(repeat):
                for side in SIDES:  # alternate, so drift in the machine hits both alike
                    runs[side].append(measure(side, repo, view))
            hw, base = runs["headwater"], runs["baseline"]
            results.append(Result(
                operation=f"get_historical_features, {label}",
                rows=int(hw[0]["rows"]),
                baseline_rows=int(base[0]["rows"]),
                headwater_s=statistics.median(r["seconds"] for r in hw),
                baseline_s=statistics.median(r["seconds"] for r in base),
                headwater_mb=max(r["peak_mb"] for r in hw),
                baseline_mb=max(r["peak_mb"] for r in base),
            ))
    return results


def table(results: list[Result]) -> str:
    """The results as a fixed-width text table."""
    header = ("operation", "rows", "headwater s", "baseline s", "ratio",
              "headwater peak MB", "baseline peak MB")
    lines = [[r.operation, f"{r.rows:,}", f"{r.headwater_s:.2f}", f"{r.baseline_s:.2f}",
              f"{r.ratio:.2f}x", f"{r.headwater_mb:,.0f}", f"{r.baseline_mb:,.0f}"]
             for r in results]
    notes = [f"note: baseline returned {r.baseline_rows:,} rows" for r in results
             if r.baseline_rows != r.rows]
    return "\n".join([text_table(header, lines), *notes])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--suite", choices=[*SUITES, "all"], default="all")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per side (default: 3, or 1 for tiny)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to write the generated data (default: the temp folder)")
    parser.add_argument("--redis-url", default=online.DEFAULT_REDIS_URL,
                        help="the Redis the online suites use; they write only keys under a "
                             "project of their own and delete them (default: "
                             "$HEADWATER_BENCH_REDIS_URL or %(default)s)")
    parser.add_argument("--engines", default="baseline,duckdb,spark",
                        help="the scaling suite's engines, comma-separated "
                             "(default: %(default)s)")
    args = parser.parse_args()
    print("load average at the start (1, 5, 15 min; other work on the machine skews the "
          f"figures; {os.cpu_count()} cores): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(_cpu_check(), flush=True)
    suites = SUITES if args.suite == "all" else (args.suite,)
    repeat = args.repeat or (1 if args.size == "tiny" else 3)
    if "historical" in suites:
        size = SIZES[args.size]
        print(f"historical, size {args.size}: {size.entities:,} entities x {size.hours} hours "
              f"= {size.view_rows:,} view rows; {size.entity_rows:,} entity rows; "
              f"median of {repeat} run(s), each in a fresh process")
        print(table(run(size, repeat, args.workdir)), flush=True)
    if "online" in suites or "http" in suites:
        if "historical" in suites:
            print()
        print(run_online(args.size, suites, repeat, args.redis_url, args.workdir))
    if "streaming" in suites:
        from benchmarks import streaming

        size_s = streaming.SIZES[args.size]
        print(f"\nstreaming, size {args.size}: {size_s.events:,} events of "
              f"{size_s.drivers:,} drivers from Redis Streams, batches of "
              f"{size_s.batch_size:,}, online store Redis; each throughput side in a fresh "
              "process pinned to one CPU (column CPU), one consumer")
        results, fresh = streaming.run(size_s, args.redis_url, args.workdir)
        print(streaming.table(results, fresh))
    if "aggregation" in suites:
        from benchmarks import aggregation

        size_a = aggregation.SIZES[args.size]
        print(f"\naggregation, size {args.size}: {size_a.events:,} events of "
              f"{size_a.entities:,} drivers over 30 days, {size_a.entity_rows:,} entity rows; "
              f"median of {repeat} run(s), each in a fresh process")
        print(aggregation.table(aggregation.run(size_a, repeat, args.workdir)), flush=True)
    if "models" in suites:
        from benchmarks import predict

        size_m = predict.SIZES.get(args.size, predict.SIZES["full"])
        print(f"\nmodels, size {args.size}: {size_m.customers:,} customers x {size_m.days} "
              f"days, 10 features, HistGradientBoostingClassifier(max_iter=100), SQLite "
              f"online store; {size_m.calls:,} calls per run after {size_m.warmup:,} "
              f"warm-up calls, median over {repeat} client run(s)")
        print(predict.table(predict.run(size_m, repeat, args.workdir)), flush=True)
    if "drift" in suites:
        from benchmarks import drift

        rows_d = drift.SIZES[args.size]
        print(f"\ndrift, size {args.size}: {' and '.join(f'{r:,}' for r in rows_d)} reference "
              f"and current rows, {drift.NUMERIC} numeric + {len(drift.LEVELS)} categorical "
              f"columns, {len(drift.SHIFTED)} shifted ({', '.join(drift.SHIFTED)}); median of "
              f"{repeat} run(s) per side, each in a fresh process")
        print(drift.table(drift.run(rows_d, repeat)), flush=True)
    if "scaling" in suites:
        from benchmarks import scaling

        print(f"\n{scaling.describe(args.size, repeat)}", flush=True)
        engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
        print(scaling.table(scaling.run(args.size, repeat, args.workdir, engines=engines)),
              flush=True)
    failed = None
    if "load" in suites:
        from benchmarks import load

        print(f"\n{load.describe(args.size)}", flush=True)
        rows_l = load.run(args.size, args.redis_url, args.workdir)
        print(load.table(rows_l), flush=True)
        failed = load.failures(rows_l)
    print(f"\nload average at the end (1, 5, 15 min; {os.cpu_count()} cores): "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(_cpu_check())
    if failed:
        raise SystemExit(failed)


def run_online(size_name: str, suites: tuple[str, ...], repeat: int, redis_url: str,
               workdir: Path | None) -> str:
    """The online and/or http suites on one generated workspace, as printable tables."""
    from urllib.parse import urlsplit

    size = online.SIZES[size_name]
    where = urlsplit(redis_url)  # no credentials in the output
    out = [f"online, size {size_name}: {size.entities:,} entities x {size.hours} hours = "
           f"{size.view_rows:,} view rows, 10 features; Redis at {where.hostname}:{where.port}"]
    latencies: list[online.LatencyResult] = []
    with online.workspace(size, redis_url, workdir) as ws:
        if "online" in suites:
            warmup = size_name != "tiny"
            materialized = online.run_materialize(ws, repeat, warmup=warmup)
            out.append(f"materialization: median of {repeat} run(s) per side, each in a fresh "
                       "process" + (" after an unrecorded warm-up" if warmup else ""))
            out.append(online.materialize_table(materialized))
            latencies += online.run_reads(ws, repeat)
        if "http" in suites:
            from benchmarks import http

            # the online suite left every view materialized
            latencies += http.run_http(ws, repeat, materialize="online" not in suites)
    out.append(f"\nlatency: {size.calls:,} calls per run after {size.warmup:,} warm-up calls, "
               f"random entities; median over {repeat} run(s), each in a fresh process. "
               "In-process: both sides interleaved. HTTP: sequential requests on one "
               "keep-alive httpx client to a one-worker server; no raw baseline exists, "
               "Feast 0.67 is the reference")
    out.append(online.latency_table(latencies))
    if "http" in suites:
        out.append("floor rows: the same client against uvicorn answering the same bytes with "
                   "no store behind it, i.e. what the client and the transport cost alone")
    return "\n".join(out)



def _cpu_check() -> str:
    return (f"CPU check: a Python loop of {CPU_CHECK_ADDITIONS:,} additions took "
            f"{cpu_check_s():.2f} s on one core (the figures scale with it)")


if __name__ == "__main__":
    main()
