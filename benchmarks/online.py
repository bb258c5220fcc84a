"""Benchmarks: materialization into the online stores, and in-process online reads.

Data: ``driver_stats`` from :mod:`headwater.testing.data` with 10 features (``entities x
hours`` hourly rows, one Parquet file). Two repos over that one file, identical but for
``online: type:`` (SQLite, Redis), each with four views applied: ``driver_stats`` (all 10
features) and ``driver_a`` / ``driver_b`` / ``driver_c`` (4 + 3 + 3 of them, same entity).

**Materialization** of ``driver_stats`` over the whole time range, one record per entity,
each measurement in a fresh process (``python -m benchmarks.online materialize ...``) that
reports its wall time, the records it wrote and its peak resident memory, into a store
emptied before each run:

* **headwater**: ``FeatureStore.materialize(start, end, views=["driver_stats"])`` (store,
  registry and engine opened before the clock starts).
* **baseline**: the same work written directly: one DuckDB query with ``arg_max`` per
  column for the latest row per entity, ``fetchall()``, the same key and record bytes built
  with ``msgpack`` and ``struct``, then SQLite ``executemany(INSERT OR REPLACE)`` in one
  transaction, or one redis-py pipeline of ``HSET``. Unlike headwater it does not stream in
  bounded batches and does not compare-and-set (a write may replace a newer record).

After each run the parent hashes what the store holds, so the table can say whether both
sides stored byte-identical records.

**In-process reads** (``python -m benchmarks.online reads REPO ...``, one fresh process per
backend): random entities, the same ones for both sides, calls interleaved, after a warm-up.

* **headwater**: ``store.get_online_features(features, entity_rows).to_dict()``: plan,
  key encoding, one store round trip, decoding, statuses and ttl, columns.
* **baseline**: the raw bytes of the same records with the same client and no decoding, keys
  encoded beforehand (the floor of a store round trip): SQLite ``SELECT value ... WHERE
  view = ? AND key = ?``, for 3 views one ``SELECT ... WHERE key = ? AND view IN (?, ?, ?)``,
  for 100 entities one ``SELECT ... key IN (...)``; Redis ``HGET``, ``HMGET`` of 3 fields, a
  pipeline of 100 ``HGET``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.measure import child_report, peak_mb, text_table

FEATURES = ["conv_rate", "trips", *(f"f{i}" for i in range(2, 10))]
VIEW = "driver_stats"
SPLIT = {"driver_a": FEATURES[:4], "driver_b": FEATURES[4:7], "driver_c": FEATURES[7:]}
BACKENDS = ("sqlite", "redis")
SIDES = ("headwater", "baseline")
BATCH = 100
DEFAULT_REDIS_URL = os.environ.get("HEADWATER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

# Feast 0.67 on this machine, same shape of data (issue 3), and our targets.
FEAST_MATERIALIZE_S = 13.0
TARGET_MATERIALIZE_S = 1.5


@dataclass(frozen=True)
class OnlineSize:
    """How much data the online suites use, and how many calls each read is timed over."""

    entities: int
    hours: int
    calls: int
    warmup: int

    @property
    def view_rows(self) -> int:
        return self.entities * self.hours


SIZES = {
    "tiny": OnlineSize(200, 24, calls=200, warmup=20),
    "small": OnlineSize(1_000, 720, calls=2_000, warmup=200),
    "full": OnlineSize(10_000, 720, calls=5_000, warmup=500),
}


@dataclass(frozen=True)
class Target:
    """A latency goal: ``metric`` (p50 or p99) under ``ms``."""

    metric: str
    ms: float

    def __str__(self) -> str:
        return f"{self.metric} < {self.ms:g} ms"


@dataclass(frozen=True)
class LatencyResult:
    """One read operation on one backend: latency percentiles of both sides."""

    operation: str
    backend: str
    keys: int  # (entity, view) records asked per call
    calls: int
    headwater_ms: tuple[float, float]  # p50, p99
    baseline_ms: tuple[float, float] | None  # None: no raw baseline exists (HTTP)
    headwater_records: int  # records found over all calls
    baseline_records: int | None
    target: Target | None  # None: no target (the HTTP floor)
    feast: str

    @property
    def ratio(self) -> float | None:
        """headwater p99 / baseline p99."""
        if self.baseline_ms is None or self.baseline_ms[1] <= 0:
            return None
        return self.headwater_ms[1] / self.baseline_ms[1]

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        value = self.headwater_ms[0] if self.target.metric == "p50" else self.headwater_ms[1]
        return value < self.target.ms


@dataclass(frozen=True)
class MaterializeResult:
    """Materializing one view into one backend, both sides."""

    backend: str
    records: int
    baseline_records: int
    headwater_s: float
    baseline_s: float
    headwater_mb: float
    baseline_mb: float
    same_records: bool  # both sides left byte-identical records in the store

    @property
    def ratio(self) -> float:
        return self.headwater_s / self.baseline_s if self.baseline_s > 0 else float("inf")

    @property
    def meets_target(self) -> bool:
        return self.headwater_s < TARGET_MATERIALIZE_S


# -- the workspace ---------------------------------------------------------------------------


@dataclass
class Workspace:
    """The generated data and one repo per backend; Redis keys live under ``project``."""

    root: Path
    size: OnlineSize
    redis_url: str
    project: str
    repos: dict[str, Path] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        from headwater.testing.data import DEFAULT_START

        return DEFAULT_START

    @property
    def end(self) -> datetime:
        """The last event time in the data (materialize includes it)."""
        return self.start + timedelta(hours=self.size.hours - 1)

    def clear(self, backend: str) -> None:
        """Empty one backend's online store."""
        if backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite_path}{suffix}").unlink(missing_ok=True)
        else:
            _delete_redis_keys(self.redis_url, self.project)

    @property
    def sqlite_path(self) -> Path:
        return self.repos["sqlite"] / ".headwater" / "online.db"

    def contents(self, backend: str, view: str = VIEW) -> tuple[int, str]:
        """How many records of ``view`` the store holds, and a hash of them (key order)."""
        pairs: list[tuple[bytes, bytes]]
        if backend == "sqlite":
            import sqlite3

            con = sqlite3.connect(self.sqlite_path)
            try:
                pairs = con.execute("SELECT key, value FROM hw_online WHERE view = ?",
                                    (view,)).fetchall()
            finally:
                con.close()
        else:
            pairs = _redis_records(self.redis_url, self.project, view)
        digest = hashlib.sha256()
        for key, value in sorted(pairs):
            digest.update(struct.pack(">II", len(key), len(value)) + key + value)
        return len(pairs), digest.hexdigest()

    def materialize_all(self, backend: str) -> None:
        """Fill a backend's store with every view (setup for the read benchmarks)."""
        import headwater as hw

        self.clear(backend)
        with hw.FeatureStore(self.repos[backend]) as store:
            store.materialize(self.start, self.end)


@contextmanager
def workspace(size: OnlineSize, redis_url: str = DEFAULT_REDIS_URL,
              workdir: Path | None = None) -> Iterator[Workspace]:
    """Generate the data and repos; on exit delete them and the project's Redis keys."""
    with tempfile.TemporaryDirectory(prefix="headwater-bench-online-", dir=workdir) as tmp:
        ws = Workspace(Path(tmp), size, redis_url, f"bench_{uuid.uuid4().hex[:12]}")
        try:
            _prepare(ws)
            os.sync()  # flush the written files first: writeback would skew the timings
            yield ws
        finally:
            _delete_redis_keys(redis_url, ws.project)


def _prepare(ws: Workspace) -> None:
    import pyarrow.parquet as pq

    import headwater as hw
    from headwater.testing.data import driver_stats

    _check_redis(ws.redis_url)
    data = ws.root / "driver_stats.parquet"
    stats = driver_stats(ws.size.entities, ws.size.hours, n_features=len(FEATURES))
    pq.write_table(stats, data)
    del stats
    driver = hw.Entity("driver", join_keys=["driver_id"])

    def view(name: str, features: Sequence[str]) -> hw.FeatureView:
        return hw.FeatureView(
            name, entities=[driver],
            source=hw.FileSource("data/driver_stats.parquet", timestamp_field="event_timestamp",
                                 created_timestamp_field="created"),
            schema=[hw.Field(f, hw.Int64 if f == "trips" else hw.Float64) for f in features],
        )

    views = [view(VIEW, FEATURES), *(view(name, feats) for name, feats in SPLIT.items())]
    online = {"sqlite": "online:\n  type: sqlite\n",
              "redis": f"online:\n  type: redis\n  url: {json.dumps(ws.redis_url)}\n"}
    for backend in BACKENDS:
        repo = ws.root / backend
        (repo / "data").mkdir(parents=True)
        os.link(data, repo / "data" / "driver_stats.parquet")
        (repo / "headwater.yaml").write_text(f"project: {ws.project}\n{online[backend]}")
        with hw.FeatureStore(repo) as store:
            store.apply([driver, *views])
        ws.repos[backend] = repo


def _check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise SystemExit(f"the online benchmarks need Redis at {url}: {exc}. Start it, or "
                         "pass --redis-url (or set HEADWATER_BENCH_REDIS_URL)") from None
    finally:
        client.close()


def _redis_keys(client: Any, project: str) -> list[bytes]:
    keys: list[bytes] = list(client.scan_iter(match=f"hw:{project}:*", count=1_000))
    return keys


def _delete_redis_keys(url: str, project: str) -> None:
    """Delete this benchmark's keys (never anything else)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        keys = _redis_keys(client, project)
        for start in range(0, len(keys), 1_000):
            client.unlink(*keys[start:start + 1_000])
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        pass  # nothing to clean if Redis is unreachable
    finally:
        client.close()


def _redis_records(url: str, project: str, view: str) -> list[tuple[bytes, bytes]]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = _redis_keys(client, project)
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, view)
        values = pipe.execute()
    finally:
        client.close()
    head = len(f"hw:{project}:{{")
    return [(key[head:-1], value) for key, value in zip(keys, values, strict=True)
            if value is not None]


# -- materialization -------------------------------------------------------------------------


def _generation(repo: Path) -> int:
    import headwater as hw

    with hw.FeatureStore(repo) as store:
        return store.record_generation(VIEW)


def measure_materialize(ws: Workspace, backend: str, side: str,
                        generation: int) -> dict[str, Any]:
    """Empty the store, run one side in a fresh process, and add what the store holds."""
    ws.clear(backend)
    report = child_report("online", "materialize", side, ws.repos[backend],
                          ws.start.isoformat(), ws.end.isoformat(), generation)
    report["stored"], report["digest"] = ws.contents(backend)
    return report


def run_materialize(ws: Workspace, repeat: int = 1,
                    warmup: bool = True) -> list[MaterializeResult]:
    """Materialize ``driver_stats`` into each backend, ``repeat`` runs per side."""
    import statistics

    generation = _generation(ws.repos["sqlite"])
    results = []
    for backend in BACKENDS:
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        if warmup:
            for side in SIDES:  # unrecorded, so both read the Parquet file from a warm cache
                measure_materialize(ws, backend, side, generation)
        for _ in range(repeat):
            for side in SIDES:  # alternate, so drift in the machine hits both alike
                runs[side].append(measure_materialize(ws, backend, side, generation))
        hw, base = runs["headwater"], runs["baseline"]
        digests = {r["digest"] for r in hw + base}
        results.append(MaterializeResult(
            backend=backend,
            records=int(hw[0]["records"]),
            baseline_records=int(base[0]["records"]),
            headwater_s=statistics.median(r["seconds"] for r in hw),
            baseline_s=statistics.median(r["seconds"] for r in base),
            headwater_mb=max(r["peak_mb"] for r in hw),
            baseline_mb=max(r["peak_mb"] for r in base),
            same_records=len(digests) == 1 and all(
                r["stored"] == r["records"] for r in hw + base),
        ))
    return results


def materialize_headwater(repo: Path, start: datetime, end: datetime,
                          generation: int) -> tuple[float, int]:
    """Seconds and records of ``store.materialize`` of the one view."""
    import headwater as hw

    with hw.FeatureStore(repo) as store:
        _ = store.registry, store.offline  # opened before the clock, like the baseline's
        store.online.ping()
        began = time.perf_counter()
        results = store.materialize(start, end, views=[VIEW])
        seconds = time.perf_counter() - began
    return seconds, sum(r.rows for r in results)


_FLIP = 1 << 63


def _latest_query() -> str:
    picked = ", ".join(f"arg_max({f}, event_timestamp)" for f in FEATURES)
    return ("SELECT driver_id, epoch_us(max(event_timestamp)), "
            f"epoch_us(arg_max(created, event_timestamp)), {picked} "
            "FROM read_parquet($path) WHERE event_timestamp BETWEEN $start AND $end "
            "GROUP BY driver_id")


def materialize_baseline(repo: Path, start: datetime, end: datetime,
                         generation: int) -> tuple[float, int]:
    """Seconds and records of the hand-written DuckDB query plus raw client writes."""
    import duckdb
    import msgpack
    import yaml

    config = yaml.safe_load((repo / "headwater.yaml").read_text())
    online, project = config["online"], config["project"]
    header = struct.Struct(">IQQ").pack
    packb = msgpack.packb
    con = duckdb.connect()
    params = {"path": str(repo / "data" / "driver_stats.parquet"), "start": start, "end": end}
    query = _latest_query()
    if online["type"] == "sqlite":
        import sqlite3

        db = sqlite3.connect(repo / ".headwater" / "online.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS hw_online (view TEXT NOT NULL, key BLOB NOT "
                   "NULL, value BLOB NOT NULL, PRIMARY KEY (view, key)) WITHOUT ROWID")
        began = time.perf_counter()
        rows = con.execute(query, params).fetchall()
        records = [(VIEW, packb(["driver_id", r[0]]),
                    header(generation, r[1] + _FLIP, r[2] + _FLIP) + packb(r[3:]))
                   for r in rows]
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO hw_online (view, key, value) VALUES (?, ?, ?)",
                       records)
        db.execute("COMMIT")
        seconds = time.perf_counter() - began
        db.close()
    else:
        import redis

        client = redis.Redis.from_url(online["url"])
        client.ping()
        prefix, field_ = f"hw:{project}:{{".encode(), VIEW.encode()
        began = time.perf_counter()
        rows = con.execute(query, params).fetchall()
        pipe = client.pipeline(transaction=False)
        for r in rows:
            pipe.hset(prefix + packb(["driver_id", r[0]]) + b"}", field_,
                      header(generation, r[1] + _FLIP, r[2] + _FLIP) + packb(r[3:]))
        pipe.execute()
        seconds = time.perf_counter() - began
        client.close()
    con.close()
    return seconds, len(rows)


# -- in-process reads ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadOp:
    name: str
    entities: int
    views: tuple[str, ...]
    target: Target
    feast: str


READ_OPS = (
    ReadOp("get_online_features, 1 entity x 10 features, 1 view", 1, (VIEW,),
           Target("p99", 0.12), "p99 0.26 ms"),
    ReadOp("get_online_features, 1 entity x 10 features, 3 views", 1, tuple(SPLIT),
           Target("p99", 0.12), "p99 0.26 ms (1 view)"),
    ReadOp(f"get_online_features, {BATCH} entities x 10 features, 1 view", BATCH, (VIEW,),
           Target("p50", 1.0), "p50 6.3 ms"),
)


def feature_refs(views: Sequence[str]) -> list[str]:
    """The ``view:feature`` references of 10 features over ``views``."""
    if tuple(views) == (VIEW,):
        return [f"{VIEW}:{f}" for f in FEATURES]
    return [f"{view}:{f}" for view in views for f in SPLIT[view]]


def entity_draws(entities: int, calls: int, per_call: int, seed: int) -> list[list[int]]:
    """``calls`` lists of ``per_call`` distinct random driver ids."""
    import numpy as np

    from headwater.testing.data import FIRST_DRIVER_ID

    rng = np.random.default_rng(seed)
    return [[int(i) + FIRST_DRIVER_ID for i in rng.choice(entities, per_call, replace=False)]
            for _ in range(calls)]


def percentiles_ms(samples_ns: Sequence[int]) -> tuple[float, float]:
    import numpy as np

    p50, p99 = np.percentile(np.asarray(samples_ns, dtype=np.float64), [50, 99])
    return float(p50) / 1e6, float(p99) / 1e6


class RawReader:
    """The baseline reads: the same records' bytes with the raw client, no decoding."""

    def __init__(self, repo: Path) -> None:
        import yaml

        config = yaml.safe_load((repo / "headwater.yaml").read_text())
        self.backend: str = config["online"]["type"]
        self.project: str = config["project"]
        if self.backend == "sqlite":
            import sqlite3

            self._db = sqlite3.connect(repo / ".headwater" / "online.db", isolation_level=None,
                                       check_same_thread=False)
        else:
            import redis

            self._redis = redis.Redis.from_url(config["online"]["url"])

    def keys(self, ids: Sequence[int]) -> list[bytes]:
        """The stored form of the keys: the SQLite key, or the Redis hash name."""
        import msgpack

        keys = [bytes(msgpack.packb(["driver_id", i])) for i in ids]
        if self.backend == "sqlite":
            return keys
        prefix = f"hw:{self.project}:{{".encode()
        return [prefix + key + b"}" for key in keys]

    def reader(self, op: ReadOp) -> Callable[[list[bytes]], int]:
        """A function of the encoded keys that reads them and returns the records found."""
        views = op.views
        if self.backend == "sqlite":
            execute = self._db.execute
            if op.entities == 1 and len(views) == 1:
                sql = "SELECT value FROM hw_online WHERE view = ? AND key = ?"
                view = views[0]
                return lambda keys: len(execute(sql, (view, keys[0])).fetchall())
            if op.entities == 1:
                marks = ", ".join("?" * len(views))
                sql = f"SELECT view, value FROM hw_online WHERE key = ? AND view IN ({marks})"
                return lambda keys: len(execute(sql, (keys[0], *views)).fetchall())
            marks = ", ".join("?" * op.entities)
            sql = f"SELECT key, value FROM hw_online WHERE view = ? AND key IN ({marks})"
            view = views[0]
            return lambda keys: len(execute(sql, (view, *keys)).fetchall())
        client = self._redis
        fields = [v.encode() for v in views]
        if op.entities == 1 and len(views) == 1:
            return lambda keys: int(client.hget(keys[0], fields[0]) is not None)
        if op.entities == 1:
            return lambda keys: sum(v is not None for v in client.hmget(keys[0], fields))

        def pipelined(keys: list[bytes]) -> int:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, fields[0])
            return sum(v is not None for v in pipe.execute())

        return pipelined

    def close(self) -> None:
        if self.backend == "sqlite":
            self._db.close()
        else:
            self._redis.close()


def read_latencies(repo: Path, calls: int, warmup: int, entities: int,
                   seed: int = 0) -> dict[str, dict[str, Any]]:
    """Child process: every read op, both sides, interleaved; per op the percentiles and
    the records found."""
    import headwater as hw

    raw = RawReader(repo)
    try:
        with hw.FeatureStore(repo) as store:
            return {op.name: _time_op(store, raw, op,
                                      entity_draws(entities, warmup + calls, op.entities,
                                                   seed * 10 + n), warmup=warmup)
                    for n, op in enumerate(READ_OPS)}
    finally:
        raw.close()


def _time_op(store: Any, raw: RawReader, op: ReadOp, draws: list[list[int]],
             *, warmup: int) -> dict[str, Any]:
    """Time ``op`` over ``draws`` (entity ids per call), the first ``warmup`` unrecorded."""
    from headwater.serving.response import PRESENT

    refs = feature_refs(op.views)
    rows = [[{"driver_id": i} for i in ids] for ids in draws]
    keys = [raw.keys(ids) for ids in draws]
    read_raw = raw.reader(op)
    get = store.get_online_features

    def headwater_call(i: int) -> tuple[int, int]:
        began = time.perf_counter_ns()
        response = get(refs, rows[i])
        response.to_dict()
        took = time.perf_counter_ns() - began
        return took, sum(s == PRESENT for m in response.metadata.values() for s in m.statuses)

    def baseline_call(i: int) -> tuple[int, int]:
        began = time.perf_counter_ns()
        found = read_raw(keys[i])
        return time.perf_counter_ns() - began, found

    sides = {"headwater": headwater_call, "baseline": baseline_call}
    for i in range(warmup):
        headwater_call(i)
        baseline_call(i)
    gc.collect()
    times: dict[str, list[int]] = {side: [] for side in SIDES}
    found = dict.fromkeys(SIDES, 0)
    for i in range(warmup, len(draws)):
        for side in SIDES if i % 2 else SIDES[::-1]:  # alternate who goes first
            took, got = sides[side](i)
            times[side].append(took)
            found[side] += got
    return {
        "headwater_ms": percentiles_ms(times["headwater"]),
        "baseline_ms": percentiles_ms(times["baseline"]),
        "headwater_records": found["headwater"],
        "baseline_records": found["baseline"],
    }


def run_reads(ws: Workspace, repeat: int = 1) -> list[LatencyResult]:
    """Fill each backend with every view, then time the reads ``repeat`` times, each in a
    fresh process; the table takes the median of each percentile over the runs."""
    results = []
    for backend in BACKENDS:
        ws.materialize_all(backend)
        reports = []
        for run in range(repeat):
            reports.append(child_report("online", "reads", ws.repos[backend], ws.size.calls,
                                        ws.size.warmup, ws.size.entities, run))

        for op in READ_OPS:
            results.append(LatencyResult(
                operation=op.name, backend=backend, keys=op.entities * len(op.views),
                calls=ws.size.calls * repeat,
                headwater_ms=_median_ms(reports, op.name, "headwater_ms"),
                baseline_ms=_median_ms(reports, op.name, "baseline_ms"),
                headwater_records=sum(r[op.name]["headwater_records"] for r in reports),
                baseline_records=sum(r[op.name]["baseline_records"] for r in reports),
                target=op.target, feast=op.feast,
            ))
    return results


def _median_ms(reports: Sequence[dict[str, Any]], op: str,
               side: str) -> tuple[float, float]:
    """The median p50 and the median p99 of one side over several runs."""
    import statistics

    return (statistics.median(r[op][side][0] for r in reports),
            statistics.median(r[op][side][1] for r in reports))


# -- tables ----------------------------------------------------------------------------------


def materialize_table(results: Sequence[MaterializeResult]) -> str:
    header = ("materialize driver_stats, whole range", "backend", "records", "headwater s",
              "baseline s", "ratio", "target", "met", "Feast 0.67", "headwater peak MB",
              "baseline peak MB", "same records")
    rows = [("store.materialize", r.backend,
             f"{r.records:,}" + ("" if r.records == r.baseline_records
                                 else f" (baseline {r.baseline_records:,})"),
             f"{r.headwater_s:.3f}", f"{r.baseline_s:.3f}", f"{r.ratio:.2f}x",
             f"< {TARGET_MATERIALIZE_S:g} s", "yes" if r.meets_target else "NO",
             f"{FEAST_MATERIALIZE_S:g} s", f"{r.headwater_mb:,.0f}", f"{r.baseline_mb:,.0f}",
             "yes" if r.same_records else "NO")
            for r in results]
    return text_table(header, rows)


def latency_table(results: Sequence[LatencyResult]) -> str:
    header = ("operation", "backend", "records/call", "headwater p50 ms", "headwater p99 ms",
              "baseline p50 ms", "baseline p99 ms", "ratio p99", "target", "met",
              "Feast 0.67")
    rows = []
    for r in results:
        base = (("-", "-") if r.baseline_ms is None
                else (f"{r.baseline_ms[0]:.3f}", f"{r.baseline_ms[1]:.3f}"))
        rows.append((r.operation, r.backend, str(r.keys), f"{r.headwater_ms[0]:.3f}",
                     f"{r.headwater_ms[1]:.3f}", *base,
                     "-" if r.ratio is None else f"{r.ratio:.2f}x",
                     "-" if r.target is None else str(r.target),
                     {True: "yes", False: "NO", None: "-"}[r.meets_target], r.feast))
    return text_table(header, rows)


# -- child processes -------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    """``materialize SIDE REPO START END GENERATION`` or ``reads REPO CALLS WARMUP
    ENTITIES SEED``; prints one JSON line."""
    if argv[0] == "materialize":
        side, repo = argv[1], Path(argv[2])
        start, end = datetime.fromisoformat(argv[3]), datetime.fromisoformat(argv[4])
        run = materialize_headwater if side == "headwater" else materialize_baseline
        seconds, records = run(repo, start, end, int(argv[5]))
        print(json.dumps({"seconds": seconds, "records": records, "peak_mb": peak_mb()}))
    elif argv[0] == "reads":
        repo, (calls, warmup, entities, seed) = Path(argv[1]), map(int, argv[2:6])
        print(json.dumps(read_latencies(repo, calls, warmup, entities, seed)))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

