"""Benchmark: closed-loop load on ``POST /features`` and ``POST /predict`` (issue 9, point 4).

One real ``headwater serve`` subprocess on loopback, auth on: the generated churn repo of
:mod:`headwater.testing.models` (``customers`` entities, 10 float features in one view, its
days ending today) with a Redis online store on a project of its own (its keys deleted at
the end), the ``churn`` model (HistGradientBoostingClassifier, 100 iterations) trained,
promoted and materialized, and a registry key with the scopes ``read`` and ``predict``
sent as ``Authorization: Bearer``. For each endpoint (``/features``: 1 entity x 10
features; ``/predict``: 1 entity, the production ``churn``) and each concurrency level, a
load client in a fresh process opens that many keep-alive connections and runs a closed
loop on each (send a request, read the whole response, send the next) over random
entities: an unrecorded warm-up, then ``seconds`` of measurement, bounded in time and in
count (:mod:`benchmarks.load_client`: ``MAX_REQUESTS``; a request taking over
``REQUEST_TIMEOUT_S`` is an error). Each
row records the requests completed in the measured window, the errors (any answer other
than 200, any connection failure or timeout, warm-up included), the throughput, the
latency p50/p99/p99.9 and the slowest, from writing the request to having read its whole
response, and the CPU the server processes (all workers) and the client used over the
window, in % of one core. Then a floor row (below), and two rows at the highest level with
``headwater serve --workers 2``, loaded once each worker has started.
Any error fails the suite (:func:`failures`): zero errors is the target.

The client is not the bottleneck, checked three ways: it is a raw asyncio HTTP/1.1 client
(uvloop when installed, as uvicorn uses) writing pre-encoded requests and parsing only the
status line and Content-Length; every row shows its CPU next to the server's; and the floor
row runs the same client against uvicorn answering the same bytes with no store behind it
(:func:`benchmarks.http.floor_app`). In the full run of issue 9 (2 cores, load average 0.03
at the start, 2.4 at the end) the one-worker server used 82-97% of its core on every row
while the client used 19-25% (``/features``) and 9-12% (``/predict``), i.e. about a quarter
and a tenth of the server's CPU per request; against the floor the client reached 13,163
req/s at 64 connections, 4.4 times the best ``headwater serve`` row (two workers, 3,010
req/s). With two workers the server and the client share the two cores, so those rows are
bounded by the machine (server 143-172%, client 15-33%), not by the client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.load_client import KEY_ENV, REQUEST_TIMEOUT_S, Plan, body
from benchmarks.measure import ROOT, text_table

ENDPOINTS = ("/features", "/predict")
START_TIMEOUT_S = 180.0
"""Two workers took 50 s to start on a 2-core machine at load average 18."""
HEADWATER = "headwater serve"
FLOOR = "floor: uvicorn, same bytes, no store"


@dataclass(frozen=True)
class Size:
    """How much data, which concurrency levels, how long each run lasts."""

    customers: int
    days: int
    levels: tuple[int, ...]
    seconds: float
    warmup_s: float


SIZES = {
    "tiny": Size(customers=500, days=20, levels=(1, 4), seconds=2.0, warmup_s=0.5),
    "small": Size(customers=2_000, days=30, levels=(1, 8, 32, 64), seconds=10.0,
                  warmup_s=2.0),
    "full": Size(customers=10_000, days=30, levels=(1, 8, 32, 64), seconds=60.0,
                 warmup_s=3.0),
}


@dataclass(frozen=True)
class LoadRow:
    """One closed-loop run: an endpoint at a concurrency on a number of workers."""

    endpoint: str
    connections: int
    workers: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    server_cpu: float
    """Percent of one core, summed over the server's processes."""
    client_cpu: float
    first_error: str | None = None
    server: str = HEADWATER

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def describe(size_name: str) -> str:
    """The suite's heading line."""
    size = SIZES[size_name]
    return (f"load, size {size_name}: one `headwater serve` on loopback, auth on (scoped "
            f"key), Redis online store, {size.customers:,} customers x 10 features, model "
            f"HistGradientBoostingClassifier(max_iter=100); closed loop per keep-alive "
            f"connection, {size.seconds:g} s per run after a {size.warmup_s:g} s warm-up, "
            f"random entities; CPU in % of one core over the window")


def run(size_name: str, redis_url: str, workdir: Path | None = None) -> list[LoadRow]:
    """Every row of the suite: each endpoint at each level on one worker, then each
    endpoint at the highest level on two workers."""
    from benchmarks import online

    size = SIZES[size_name]
    online._check_redis(redis_url)
    project = f"bench_load_{os.urandom(6).hex()}"
    rows: list[LoadRow] = []
    with tempfile.TemporaryDirectory(prefix="headwater-bench-load-", dir=workdir) as tmp:
        repo = Path(tmp) / "repo"
        folder, top = Path(tmp), size.levels[-1]

        def plan(endpoint: str, connections: int) -> Plan:
            return Plan(endpoint, connections, size.seconds, size.warmup_s, size.customers)

        try:
            key = prepare(repo, size, redis_url, project)
            with server(repo, key, 1, folder / "serve-1.log") as one:
                rows += [_client(one, key, plan(endpoint, level), 1, log=one.log)
                         for endpoint in ENDPOINTS for level in size.levels]
            with floor(one.sample, folder / "floor.log") as base:
                rows.append(_client(base, key, plan("/features", top), 1, FLOOR, base.log))
            with server(repo, key, 2, folder / "serve-2.log") as two:
                rows += [_client(two, key, plan(endpoint, top), 2, log=two.log)
                         for endpoint in ENDPOINTS]
        finally:
            online._delete_redis_keys(redis_url, project)
    return rows


def prepare(repo: Path, size: Size, redis_url: str, project: str) -> str:
    """Write the churn repo with a Redis online store under ``project``, apply, train and
    promote ``churn``, materialize, and return a new key with the read and predict
    scopes."""
    import pyarrow.parquet as pq
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from headwater.serving.keys import create_key
    from headwater.testing import models

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=size.days - 1)
    models.churn_repo(repo, customers=size.customers, days=size.days, project=project)
    features, labels = models.churn_data(size.customers, size.days, start=start)
    pq.write_table(features, repo / models.FEATURES_FILE)
    pq.write_table(labels, repo / models.LABELS_FILE)
    definitions = repo / models.DEFINITIONS_FILE
    definitions.write_text(definitions.read_text().replace(
        models.split_start(size.days).date().isoformat(),
        models.split_start(size.days, start).date().isoformat()))
    (repo / "headwater.yaml").write_text(
        f"project: {project}\nonline:\n  type: redis\n  url: {json.dumps(redis_url)}\n")
    with models.applied_store(repo) as store:
        # one OpenMP thread: on a busy 2-core machine spinning threads made the fit 15x
        # slower, and the fit is not what this suite measures
        with threadpool_limits(1):
            store.promote("churn", store.train("churn").version)
        store.materialize(start - timedelta(days=1), datetime.now(UTC))
        key, _ = create_key(store, "load-benchmark", ("read", "predict"))
    return key


@dataclass(frozen=True)
class Served:
    """A server process under test: its port, its pid (the root of its processes), and
    the bytes it answered to a 1-entity ``POST /features`` (for the floor)."""

    port: int
    pid: int
    sample: bytes
    log: Path


@contextmanager
def server(repo: Path, key: str, workers: int, log: Path) -> Iterator[Served]:
    """``headwater serve --workers N`` over ``repo`` (auth on), once ``GET /health``
    answers 200 to ``key`` and, with several workers, each has written its first metrics
    snapshot (it has started: stores open, model loaded; so the load's connections spread
    over all of them) and both endpoints answer real values; stopped on exit."""
    script = Path(sys.executable).with_name("headwater")
    head = ([str(script)] if script.exists() else
            [sys.executable, "-c", "from headwater.cli.main import main; main()"])
    # the server makes its metrics folder under $TMPDIR: one of ours, to watch it
    temp = Path(tempfile.mkdtemp(prefix="serve-tmp-", dir=log.parent))

    def started(client: Any) -> bytes | None:
        if client.get("/health").status_code != 200 or (
                workers > 1 and len(list(temp.glob("headwater-metrics-*/*.json"))) < workers):
            return None
        return _check_answers(client)

    with _serving(lambda port: [*head, "serve", "--repo", str(repo), "--host", "127.0.0.1",
                                "--port", str(port), "--workers", str(workers)],
                  {"TMPDIR": str(temp)}, {"authorization": f"Bearer {key}"}, started,
                  log) as served:
        yield served


@contextmanager
def floor(sample: bytes, log: Path) -> Iterator[Served]:
    """uvicorn (one worker, the loop and parser ``headwater serve`` uses) running
    :func:`benchmarks.http.floor_app`, which answers ``POST /features`` with ``sample``
    and no store behind it: what the client and the transport cost alone."""
    from benchmarks.http import FLOOR_ENV

    bodies = log.with_suffix(".json")
    bodies.write_text(json.dumps({"1": sample.decode("latin-1")}))

    def started(client: Any) -> bytes | None:
        return sample if client.get("/health").status_code == 200 else None

    with _serving(lambda port: [sys.executable, "-m", "uvicorn", "benchmarks.http:floor_app",
                                "--factory", "--host", "127.0.0.1", "--port", str(port),
                                "--log-level", "warning", "--no-access-log"],
                  {FLOOR_ENV: str(bodies)}, {}, started, log) as served:
        yield served


@contextmanager
def _serving(command: Callable[[int], list[str]], env: dict[str, str],
             headers: dict[str, str], started: Callable[[Any], bytes | None],
             log: Path) -> Iterator[Served]:
    """Run ``command(port)`` and poll ``started`` (an httpx client on the port) until it
    returns the sample (bounded); stop the process on exit."""
    import httpx

    from headwater.testing.processes import free_port, stop_process

    for attempt in range(3):  # another process may take the free port before the server
        port = free_port()
        with log.open("w") as out:
            process = subprocess.Popen(command(port), stdout=out, stderr=subprocess.STDOUT,
                                       cwd=ROOT, env={**os.environ, **env})
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0,
                              headers=headers) as client:
                while time.monotonic() < deadline and process.poll() is None:
                    try:
                        sample = started(client)
                    except httpx.TransportError:
                        sample = None
                    if sample is not None:
                        yield Served(port, process.pid, sample, log)
                        return
                    time.sleep(0.05)  # polling for start-up, not timing anything
        finally:
            stop_process(process)
        if attempt == 2:
            tail = "\n".join(log.read_text().splitlines()[-20:])
            raise RuntimeError(f"{command(port)[0]} did not come up on port {port} within "
                               f"{START_TIMEOUT_S:g} s:\n{tail}")


def _check_answers(client: Any) -> bytes:
    """One request per endpoint answers 200 with a present record / a score: the load
    then measures real reads, not misses or refusals. Returns the ``/features`` answer."""
    from headwater.serving.response import PRESENT

    features = client.post("/features", content=body("/features", 1))
    predict = client.post("/predict", content=body("/predict", 1))
    for response in (features, predict):
        if response.status_code != 200:
            raise RuntimeError(f"{response.request.url.path} answered "
                               f"{response.status_code}: {response.text[:500]}")
    statuses = [s for view in features.json()["views"].values() for s in view["statuses"]]
    if statuses != [PRESENT]:
        raise RuntimeError(f"POST /features found no fresh record: {features.text[:500]}")
    if "predictions" not in predict.json() and "prediction" not in predict.text:
        raise RuntimeError(f"POST /predict answered no prediction: {predict.text[:500]}")
    content: bytes = features.content
    return content


def _client(served: Served, key: str, plan: Plan, workers: int,  # noqa: PLR0917
            label: str = HEADWATER, log: Path | None = None) -> LoadRow:
    """One run in a fresh client process, bounded by a timeout. With errors, the first
    names the end of the server's ``log`` too."""
    args = [served.port, served.pid, plan.endpoint, plan.connections, plan.seconds, plan.warmup_s,
            plan.customers]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.load_client", "client", *map(str, args)],
        check=True, capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, KEY_ENV: key},
        timeout=plan.seconds + plan.warmup_s + REQUEST_TIMEOUT_S + 60)
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if report["errors"] and log is not None:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        report["first_error"] += ("\n    the server log ends with:\n      "
                                  + "\n      ".join(tail or ["(nothing)"]))
    return LoadRow(endpoint=plan.endpoint, connections=plan.connections, workers=workers,
                   server=label, **report)


def failures(rows: Sequence[LoadRow]) -> str | None:
    """None when no run had an error, else a message naming each failing run."""
    bad = [r for r in rows if r.errors]
    if not bad:
        return None
    return "load benchmark FAILED, the target is zero errors:\n" + "\n".join(
        f"  {r.server}, POST {r.endpoint}, {r.connections} connection(s), {r.workers} "
        f"worker(s): "
        f"{r.errors:,} error(s) in {r.requests + r.errors:,} requests; first: {r.first_error}"
        for r in bad)


def table(rows: Sequence[LoadRow]) -> str:
    """The rows as a fixed-width text table."""
    header = ("server", "endpoint", "workers", "connections", "requests", "errors", "req/s",
              "p50 ms", "p99 ms", "p99.9 ms", "max ms", "server CPU %", "client CPU %")
    return text_table(header, [
        [r.server, f"POST {r.endpoint}", str(r.workers), str(r.connections), f"{r.requests:,}",
         str(r.errors), f"{r.throughput:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}",
         f"{r.p999_ms:.2f}", f"{r.max_ms:.0f}", f"{r.server_cpu:.0f}",
         f"{r.client_cpu:.0f}"] for r in rows])
