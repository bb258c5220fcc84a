"""The benchmarks run (at the tiny size, as in CI) and both sides do the same work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import online, scaling_data
from benchmarks.__main__ import run, table
from benchmarks.historical import SIZES, VARIANTS
from benchmarks.measure import ROOT, one_cpu


def test_tiny_benchmark_table(tmp_path: Path) -> None:
    size = SIZES["tiny"]
    results = run(size, repeat=1, workdir=tmp_path)
    assert [r.operation for r in results] == [
        f"get_historical_features, {label}" for label in VARIANTS.values()]
    for result in results:
        assert result.rows == result.baseline_rows == size.entity_rows
        assert result.headwater_s > 0 and result.baseline_s > 0
        assert result.headwater_mb > 0 and result.baseline_mb > 0
    text = table(results).splitlines()
    assert text[0].split("  ")[0] == "operation"
    assert "ratio" in text[0] and "headwater peak MB" in text[0]
    assert len(text) == 2 + len(results)  # header, rule, one line per operation
    assert list(tmp_path.iterdir()) == []  # the generated data is cleaned up


def _table_shape(text: str, rows: int, columns: tuple[str, ...]) -> None:
    lines = text.splitlines()
    assert len(lines) == 2 + rows  # header, rule, one line per result
    for column in columns:
        assert column in lines[0]
    assert set(lines[1]) <= {"-", " "}


def test_tiny_online_benchmarks(tmp_path: Path, redis_url: str) -> None:
    import redis

    size = online.SIZES["tiny"]
    with online.workspace(size, redis_url, tmp_path) as ws:
        materialized = online.run_materialize(ws, repeat=1, warmup=False)
        reads = online.run_reads(ws, repeat=1)
        project = ws.project
    assert [r.backend for r in materialized] == list(online.BACKENDS)
    for m in materialized:
        assert m.records == m.baseline_records == size.entities  # one record per entity
        assert m.same_records  # both sides left byte-identical records in the store
        assert m.headwater_s > 0 and m.baseline_s > 0
        assert m.headwater_mb > 0 and m.baseline_mb > 0
    assert [(r.backend, r.operation) for r in reads] == [
        (backend, op.name) for backend in online.BACKENDS for op in online.READ_OPS]
    for r, op in zip(reads, online.READ_OPS * len(online.BACKENDS), strict=True):
        assert r.keys == op.entities * len(op.views)
        # both sides found every record they were asked for, and the same number
        assert r.headwater_records == r.baseline_records == r.calls * r.keys
        assert r.baseline_ms is not None
        for p50, p99 in (r.headwater_ms, r.baseline_ms):
            assert 0 < p50 <= p99
        assert r.ratio is not None and r.ratio > 0
    _table_shape(online.materialize_table(materialized), len(materialized),
                 ("records", "headwater s", "baseline s", "ratio", "target", "Feast 0.67",
                  "same records"))
    _table_shape(online.latency_table(reads), len(reads),
                 ("headwater p50 ms", "headwater p99 ms", "baseline p50 ms",
                  "baseline p99 ms", "ratio p99", "target", "Feast 0.67"))
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"hw:{project}:*")) == []  # keys cleaned up
    finally:
        client.close()
    assert list(tmp_path.iterdir()) == []


def test_tiny_http_benchmark(tmp_path: Path, redis_url: str) -> None:
    from benchmarks import http

    size = online.SIZES["tiny"]
    with online.workspace(size, redis_url, tmp_path) as ws:
        results = http.run_http(ws, repeat=1)  # a real `headwater serve` per backend
    sides = [*online.BACKENDS, http.FLOOR]  # the floor: uvicorn + httpx, no store
    assert [r.backend for r in results] == [b for b in sides for _ in http.HTTP_OPS]
    for r, op in zip(results, http.HTTP_OPS * len(sides), strict=True):
        assert r.keys == op.entities
        assert r.headwater_records == r.calls * r.keys  # every record served, every call
        assert 0 < r.headwater_ms[0] <= r.headwater_ms[1]
        assert r.baseline_ms is None and r.baseline_records is None and r.ratio is None
        assert (r.target is None) == (r.backend == http.FLOOR)
    _table_shape(online.latency_table(results), len(results),
                 ("headwater p50 ms", "headwater p99 ms", "target", "Feast 0.67"))
    assert list(tmp_path.iterdir()) == []


def test_tiny_streaming_benchmark(tmp_path: Path, redis_url: str) -> None:
    from benchmarks import streaming

    size = streaming.SIZES["tiny"]
    results, fresh = streaming.run(size, redis_url, tmp_path)
    assert [r.side for r in results] == ["headwater", "baseline"]
    cpu = one_cpu()  # None where affinity cannot be set: then not pinned
    for r in results:  # both sides read every event of the backlog once, on one CPU
        assert r.events == size.events and r.seconds > 0 and r.peak_mb > 0
        assert r.cpus == (() if cpu is None else (cpu,))
    assert fresh.samples == size.samples and 0 < fresh.p50_s <= fresh.p99_s
    table = streaming.table(results, fresh)
    _table_shape(table, 3, ("events/s", "seconds", "CPU", "target"))
    assert f"  {'?' if cpu is None else cpu}  " in table.splitlines()[2]
    assert list(tmp_path.iterdir()) == []


def test_tiny_aggregation_benchmark(tmp_path: Path) -> None:
    from benchmarks import aggregation

    size = aggregation.SIZES["tiny"]
    result = aggregation.run(size, repeat=1, workdir=tmp_path)
    assert result.rows == result.baseline_rows == size.entity_rows
    assert result.same_values  # both sides computed the same counts and means
    assert result.headwater_s > 0 and result.baseline_s > 0
    assert result.headwater_mb > 0 and result.baseline_mb > 0
    _table_shape(aggregation.table(result), 1,
                 ("headwater s", "baseline s", "ratio", "target", "same values"))
    assert list(tmp_path.iterdir()) == []


def test_tiny_models_benchmark(tmp_path: Path) -> None:
    from benchmarks import predict

    rows = predict.run(predict.SIZES["tiny"], repeat=1, workdir=tmp_path)
    # latencies (2 clients, in process), batch, train, registration
    assert len(rows) == 3 * len(predict.MODELS) + 3
    assert all(r.value and ("ms" in r.value or "rows/s" in r.value or " s " in r.value)
               for r in rows)
    _table_shape(predict.table(rows), len(rows), ("operation", "headwater", "reference"))
    assert list(tmp_path.iterdir()) == []  # the generated repo is cleaned up


def test_tiny_drift_benchmark() -> None:
    # issue 6 point 9 data at 20,000 rows a side: every shift found, nothing else flagged,
    # and the plain numpy baseline drifts the same columns
    from benchmarks import drift

    results = drift.run(drift.SIZES["tiny"], repeat=1)
    assert [r.rows for r in results] == [20_000]
    for r in results:
        assert r.found == len(drift.SHIFTED) == 6 and r.false_alarms == ()
        assert r.same_decisions
        assert r.headwater_s > 0 and r.baseline_s > 0
        assert r.headwater_mb > 0 and r.baseline_mb > 0
    text = drift.table(results)
    _table_shape(text, 1, ("rows", "headwater s", "baseline s", "ratio", "target",
                           "headwater peak MB", "baseline peak MB", "found", "false alarms",
                           "same decisions"))
    assert "6/6" in text.splitlines()[2]


def test_tiny_scaling_benchmark(tmp_path: Path) -> None:
    # every engine at 10k and 100k feature rows returns the entity rows, with the same
    # values as the hand-written ASOF join; Spark runs whenever the engine is there
    from benchmarks import scaling

    data, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    results = scaling.run("tiny", repeat=1, workdir=work, data_root=data)
    sizes = scaling.SIZES["tiny"]
    assert [(r.engine, r.feature_rows) for r in results] == [
        (engine, n) for engine in scaling.ENGINES for n in sizes]
    spark_missing = scaling.spark_unavailable()
    for r in results:
        assert r.entity_rows == scaling.ENTITY_ROWS["tiny"]
        if r.engine == "spark" and spark_missing:
            assert r.seconds is None and r.skipped and spark_missing in r.skipped
            continue
        if r.engine == "spark" and r.feature_rows not in scaling.SPARK_SIZES["tiny"]:
            assert r.seconds is None and r.skipped and "not run at --size tiny" in r.skipped
            continue
        assert r.rows == r.entity_rows and r.seconds and r.seconds > 0
        assert r.peak_mb and r.peak_mb > 0
        baseline = next(b for b in results
                        if b.engine == "baseline" and b.feature_rows == r.feature_rows)
        assert r.checksum == baseline.checksum  # the same frame as the raw ASOF join
        assert (r.jvm_peak_mb is not None) == (r.engine == "spark")
    text = scaling.table(results)
    _table_shape("\n".join(line for line in text.splitlines()
                           if not line.startswith("note:")), len(results),
                 ("engine", "feature rows", "entity rows", "seconds", "CPU s", "feature rows/s",
                  "peak MB", "JVM peak MB", "growth vs 10k", "same as baseline"))
    assert "NO" not in text.split()
    assert all(r.cpu_s is not None and r.cpu_s > 0 for r in results if r.seconds)
    # the data is cached for the next run, one folder per size, next to a log of every
    # measurement; the work folder is clean
    assert sorted(p.name for p in data.iterdir()) == sorted(
        [f"n={n},e={scaling.ENTITY_ROWS['tiny']},v{scaling_data.VERSION}" for n in sizes]
        + ["runs.jsonl"])
    logged = [json.loads(line) for line in (data / "runs.jsonl").read_text().splitlines()]
    assert sorted((e["engine"], e["rows"]) for e in logged) == sorted(
        (r.engine, r.rows) for r in results if r.seconds)
    assert all(len(scaling_data.dataset(n, 10_000, data).files) == 4 for n in sizes)
    assert list(work.iterdir()) == []


def test_tiny_load_benchmark(tmp_path: Path, redis_url: str) -> None:
    # a real `headwater serve` (auth on, Redis) under closed-loop load: every request of
    # every row answered 200, percentiles ordered, both CPU figures measured
    import redis
    from benchmarks import load

    size = load.SIZES["tiny"]
    rows = load.run("tiny", redis_url, tmp_path)
    top = size.levels[-1]
    assert [(r.server, r.endpoint, r.workers, r.connections) for r in rows] == [
        *((load.HEADWATER, e, 1, c) for e in load.ENDPOINTS for c in size.levels),
        (load.FLOOR, "/features", 1, top),  # the client against a server with no store
        *((load.HEADWATER, e, 2, top) for e in load.ENDPOINTS)]
    for r in rows:
        assert r.errors == 0 and r.first_error is None
        assert r.requests > 0 and r.seconds >= size.seconds and r.throughput > 0
        assert 0 < r.p50_ms <= r.p99_ms <= r.p999_ms <= r.max_ms
        assert r.server_cpu > 0 and r.client_cpu > 0
    assert load.failures(rows) is None
    _table_shape(load.table(rows), len(rows),
                 ("server", "endpoint", "workers", "connections", "requests", "errors", "req/s",
                  "p50 ms", "p99 ms", "p99.9 ms", "max ms", "server CPU %", "client CPU %"))
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match="hw:bench_load_*")) == []  # keys cleaned up
    finally:
        client.close()
    assert list(tmp_path.iterdir()) == []


def test_load_client_counts_refusals_as_errors() -> None:
    # a server answering 401 on a keep-alive connection: the client counts every answer as
    # an error, measures none, and the suite's verdict names the run and the first error
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from benchmarks import load, load_client

    class Refuse(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(401)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        report = load_client.generate(
            httpd.server_address[1], os.getpid(), "wrong-key",
            load_client.Plan("/features", connections=2, seconds=0.3, warmup_s=0.1,
                             customers=10))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert report["requests"] == 0 and report["errors"] > 0
    assert report["first_error"].startswith("HTTP 401 (request sent ")
    row = load.LoadRow(endpoint="/features", connections=2, workers=1, **report)
    message = load.failures([row])
    assert message is not None and "zero errors" in message
    assert "headwater serve, POST /features, 2 connection(s), 1 worker(s)" in message
    assert "HTTP 401" in message


def test_the_command_prints_the_cpu_check_at_the_start_and_the_end() -> None:
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--suite", "drift", "--size",
                          "tiny"], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=600).stdout.splitlines()
    checks = [i for i, line in enumerate(out) if line.startswith("CPU check: a Python loop")]
    assert len(checks) == 2 and checks[0] == 1 and checks[1] == len(out) - 1
    seconds = [float(out[i].split(" took ")[1].split()[0]) for i in checks]
    assert all(s > 0 for s in seconds)
