"""Benchmarks: stream throughput (Redis Streams -> online tiles) and freshness.

Data: ``trip_events`` from :mod:`headwater.testing.data` (``drivers`` drivers, times in the
two hours before now), one JSON object per entry in a Redis stream (field ``data``). The repo
has a ``StreamSource`` over that stream and one aggregated view (count, sum, mean and max of
the fare over 1 hour, 1-minute tiles), with the online store in Redis (``--online sqlite``
for the embedded one).

**Throughput**, each side in a fresh process (``python -m benchmarks.streaming headwater``
and ``baseline``) reading the whole backlog as one consumer of a fresh group, on one core:
the process and all its threads are pinned to one CPU (the highest this process may use;
``sched_setaffinity``, on Linux), and the table's "CPU" column shows the CPUs each side's
process was allowed. The Redis server runs wherever the system puts it.

* **headwater**: the ``headwater stream`` runtime (:class:`~headwater.streaming.consumer.
  Consumer`): decode and validate, offline Parquet file per batch (pending, then renamed),
  exactly-once tile update online with the events' ids marked, ``XACK``; while catching
  up it reads the next batch on a helper thread that waits on Redis while a batch is
  applied (overlap of waiting, not a second worker), and there also prefetches the records
  of that batch's entities it does not hold; the commit of a batch is deferred: it runs on
  the server while the next batch is merged.
* **baseline**: ``XREADGROUP COUNT`` + ``XACK`` of the same entries with the same client,
  nothing else: the floor of reading the stream.

Batches are of the shipped ``stream.batch_size`` default, 10,000 messages, at the small
and full sizes (500 at the tiny size, so that CI runs several). Each entity's tile record is
read and written once per batch, so smaller batches cost more per event: at 5,000 the small
size measured 43,000-46,000 events/s where 10,000 gave 48,000-57,000 (issue 4 note).

**Freshness**: a ``headwater stream`` subprocess consumes while the parent appends one event
at a time (``XADD``) for a driver of its own and polls ``get_online_features`` until the
count includes it; the table gives p50/p99 of XADD -> visible.

The table also gives each side's CPU time (all threads of its process) and events per
CPU-second: the Redis server runs on the same two-core machine, so the wall rate also
measures how the consumer and the server share the cores.

Targets (issue 4): >= 50,000 events/s per core, freshness p99 < 1 s.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.measure import ROOT, child_report, cpus, one_cpu, peak_mb, text_table

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TARGET_EVENTS_S = 50_000
TARGET_P99_S = 1.0
FRESH_DRIVER = 999_999


@dataclass(frozen=True)
class StreamSize:
    events: int
    drivers: int
    batch_size: int
    samples: int


SIZES = {
    "tiny": StreamSize(2_000, 50, 500, 10),
    "small": StreamSize(50_000, 1_000, 10_000, 50),
    "full": StreamSize(300_000, 10_000, 10_000, 200),
}


@dataclass(frozen=True)
class ThroughputResult:
    side: str
    events: int
    seconds: float
    peak_mb: float
    cpu_seconds: float
    cpus: tuple[int, ...]  # the CPUs its process was allowed to run on

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_rate(self) -> float:
        """Events per second of CPU time of the consuming process (all its threads)."""
        return self.events / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


@dataclass(frozen=True)
class FreshnessResult:
    samples: int
    p50_s: float
    p99_s: float


def make_repo(folder: Path, topic: str, redis_url: str, size: StreamSize,
              online: str = "redis") -> Path:
    """A repo with the stream source and the aggregated view, applied."""
    import pyarrow.parquet as pq

    import headwater as hw
    from headwater.testing.data import trip_events

    (folder / "data" / "trips").mkdir(parents=True)
    store_yaml = (f"online:\n  type: redis\n  url: {redis_url}\n" if online == "redis"
                  else "")
    project = f"bench_{uuid.uuid4().hex[:8]}"
    (folder / "headwater.yaml").write_text(
        f"project: {project}\n{store_yaml}stream:\n  type: redis\n  url: {redis_url}\n"
        f"  batch_size: {size.batch_size}\n  block_ms: 100\n")
    seed = trip_events(1, 1, datetime(2020, 1, 1), datetime(2020, 1, 2)).slice(0, 0)
    pq.write_table(seed, folder / "data" / "trips" / "part-0.parquet")
    driver = hw.Entity("driver", join_keys=["driver_id"])
    source = hw.StreamSource("trips", timestamp_field="ts", topic=topic,
                             batch_source=hw.FileSource("data/trips/", timestamp_field="ts"))
    view = hw.FeatureView("driver_trips", entities=[driver], source=source, aggregations=[
        hw.Aggregation("fare", f, timedelta(hours=1), name=f"fare_{f}")
        for f in ("count", "sum", "mean", "max")])
    with hw.FeatureStore(folder) as store:
        store.apply([driver, view])
    return folder


def publish(redis_url: str, topic: str, size: StreamSize) -> None:
    """The backlog: ``size.events`` events, pipelined ``XADD``."""
    import redis

    from headwater.testing.data import trip_events

    end = datetime.now(UTC) - timedelta(minutes=1)
    table = trip_events(size.drivers, size.events, end - timedelta(hours=2), end)
    client = redis.Redis.from_url(redis_url)
    try:
        rows = table.to_pylist()
        for start in range(0, len(rows), 10_000):
            pipe = client.pipeline(transaction=False)
            for row in rows[start:start + 10_000]:
                pipe.xadd(topic, {"data": json.dumps({**row, "ts": row["ts"].isoformat()})})
            pipe.execute()
    finally:
        client.close()


def throughput_headwater(repo: Path, events: int) -> dict[str, float]:
    """Consume ``events`` messages with the stream runtime; its wall time."""
    import headwater as hw
    from headwater.streaming.consumer import Consumer, open_reader, stream_feeds

    with hw.FeatureStore(repo) as store:
        settings = store.settings.stream
        feeds = stream_feeds(store)
        reader = open_reader(settings, [f.topic for f in feeds], "bench")
        runtime = Consumer(store, feeds, reader, consumer="bench",
                           batch_size=settings.batch_size, block_ms=settings.block_ms)
        store.record_generation("driver_trips")
        began, cpu = time.perf_counter(), time.process_time()
        counters = runtime.run(max_events=events, idle_exit=10)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        reader.close()
    return {"events": counters.events, "seconds": seconds, "peak_mb": peak_mb(),
            "cpu_seconds": cpu, "cpus": cpus()}


def throughput_baseline(redis_url: str, topic: str, events: int,
                        batch_size: int) -> dict[str, float]:
    """XREADGROUP + XACK only, as a group of its own."""
    import redis

    client = redis.Redis.from_url(redis_url)
    group = "baseline"
    client.xgroup_create(topic, group, id="0")
    began, cpu = time.perf_counter(), time.process_time()
    seen = 0
    while seen < events:
        reply = client.xreadgroup(group, "c", {topic: ">"}, count=batch_size, block=1000)
        if not reply:
            break
        entries = reply[0][1]
        client.xack(topic, group, *[entry_id for entry_id, _ in entries])
        seen += len(entries)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    client.close()
    return {"events": seen, "seconds": seconds, "peak_mb": peak_mb(), "cpu_seconds": cpu,
            "cpus": cpus()}


def measure_freshness(repo: Path, redis_url: str, topic: str, samples: int) -> FreshnessResult:
    """XADD -> visible in get_online_features, with a ``headwater stream`` subprocess."""
    import redis

    import headwater as hw
    from headwater.testing.processes import stop_process

    consumer = subprocess.Popen(
        [sys.executable, "-m", "headwater.cli.main", "stream", "--repo", str(repo),
         "--consumer", "fresh"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    client = redis.Redis.from_url(redis_url)
    latencies = []
    try:
        with hw.FeatureStore(repo) as store:
            rows = [{"driver_id": FRESH_DRIVER}]
            for i in range(samples + 1):
                now = datetime.now(UTC)
                event = {"driver_id": FRESH_DRIVER, "ts": now.isoformat(), "fare": 1.0,
                         "rating": 5}
                began = time.perf_counter()
                client.xadd(topic, {"data": json.dumps(event)})
                deadline = began + (120 if i == 0 else 10)  # the first waits for start-up
                while time.perf_counter() < deadline:
                    at = datetime.now(UTC) + timedelta(seconds=1)
                    count = store.get_online_features(["driver_trips:fare_count"], rows,
                                                      now=at).to_dict()["fare_count"][0]
                    if count == i + 1:
                        break
                    time.sleep(0.0005)
                else:
                    raise RuntimeError(f"event {i} never became visible online")
                if i:  # the first one measures the consumer's start-up
                    latencies.append(time.perf_counter() - began)
                time.sleep(0.01)
    finally:
        client.close()
        stop_process(consumer)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return FreshnessResult(len(latencies), statistics.median(latencies), p99)


def _child(args: list[str]) -> dict[str, Any]:
    return child_report("streaming", *args, cpu=one_cpu())


def _result(side: str, report: dict[str, Any]) -> ThroughputResult:
    return ThroughputResult(side, int(report["events"]), report["seconds"],
                            report["peak_mb"], report["cpu_seconds"], tuple(report["cpus"]))


def run(size: StreamSize, redis_url: str = DEFAULT_REDIS_URL, workdir: Path | None = None,
        online: str = "redis") -> tuple[list[ThroughputResult], FreshnessResult]:
    """Both throughput sides and the freshness, on fresh streams; cleans up after itself."""
    import redis

    topic = f"hwbench.trips.{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    project = ""
    try:
        with tempfile.TemporaryDirectory(prefix="headwater-stream-", dir=workdir) as tmp:
            repo = make_repo(Path(tmp) / "repo", topic, redis_url, size, online)
            project = (repo / "headwater.yaml").read_text().split()[1]
            publish(redis_url, topic, size)
            base = _child(["baseline", redis_url, topic, str(size.events),
                           str(size.batch_size)])
            mine = _child(["headwater", str(repo), str(size.events)])
            results = [_result("headwater", mine), _result("baseline", base)]
            fresh = measure_freshness(repo, redis_url, topic, size.samples)
    finally:
        client.delete(topic, topic + ".dead")
        if project:
            keys = list(client.scan_iter(match=f"hw:{project}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start:start + 1000])
        client.close()
    return results, fresh


def table(results: list[ThroughputResult], fresh: FreshnessResult) -> str:
    """The results as a fixed-width text table."""
    header = ("measure", "events", "seconds", "events/s", "CPU s", "events/CPU-s",
              "peak MB", "CPU", "target")
    hw_rate = results[0].rate
    lines = [[f"throughput, {r.side}", f"{r.events:,}", f"{r.seconds:.2f}", f"{r.rate:,.0f}",
              f"{r.cpu_seconds:.2f}", f"{r.cpu_rate:,.0f}", f"{r.peak_mb:,.0f}",
              ",".join(map(str, r.cpus)) or "?",
              f">= {TARGET_EVENTS_S:,}/s" if r.side == "headwater" else
              f"headwater at {hw_rate / r.rate:.2f}x" if r.rate else "-"]
             for r in results]
    lines.append([f"freshness XADD -> online, p50 / p99 ({fresh.samples} events)", "",
                  f"{fresh.p50_s:.3f} / {fresh.p99_s:.3f}", "", "", "", "", "",
                  f"p99 < {TARGET_P99_S:.0f} s"])
    return text_table(header, lines)


def main(argv: list[str]) -> None:
    """Child entry points: ``headwater REPO EVENTS`` and ``baseline URL TOPIC EVENTS
    BATCH``; each prints a JSON report on its last line."""
    report: dict[str, Any]
    if argv[0] == "headwater":
        report = throughput_headwater(Path(argv[1]), int(argv[2]))
    else:
        report = throughput_baseline(argv[1], argv[2], int(argv[3]), int(argv[4]))
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
