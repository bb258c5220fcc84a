"""``headwater serve --workers 3`` on the production stores (PostgreSQL registry, Redis
online), as real processes on a loopback port of their own.

Which worker answered is observed through the OS, not through the responses: each test
connection is a keep-alive ``http.client`` connection, and the worker process holding the
server end of it is found in ``/proc/net/tcp`` (the socket's inode, by the client's port)
and ``/proc/<worker>/fd``. So a test can send requests through a chosen worker: a push
through one and reads through the others, predictions through each, a scrape through each.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import headwater as hw
from headwater.inference.log import read_log
from headwater.serving.metrics import ServerMetrics, SharedMetrics
from headwater.testing.models import FEATURE_NAMES, applied_store
from headwater.testing.processes import free_port, stop_process
from tests.cli.test_cli_subprocess import headwater_script
from tests.cli.test_serve import KEY, running, wait_healthy, worker_pids
from tests.inference.conftest import recent_churn_repo

WORKERS = 3
MAX_CONNECTIONS = 300
"""Connections opened, at most, to find one held by each worker."""
START_S = 240.0
"""How long the three workers may take to start (each imports scikit-learn to load the
model: tens of seconds on a loaded two-core machine)."""
DEADLINE_S = 20.0
"""How long a change may take to show on every worker (the refreshers poll every 2 s)."""
POLL_S = 0.1
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


@dataclass
class Server:
    repo: Path
    project: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    workers: list[int]
    metrics_dir: Path
    by_worker: dict[int, http.client.HTTPConnection]
    """One keep-alive connection per worker reached, by worker pid."""


def call(conn: http.client.HTTPConnection, method: str, path: str,
         body: Any = None) -> tuple[int, bytes]:
    """One request on ``conn`` (kept open); the status and the body."""
    conn.request(method, path, body=None if body is None else orjson.dumps(body),
                 headers=HEADERS)
    answer = conn.getresponse()
    return answer.status, answer.read()


def holder(port: int, client_port: int, workers: list[int]) -> int | None:
    """The worker holding the server end of the connection from ``client_port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if (int(local.rsplit(":", 1)[1], 16) == port and state == "01"
                    and int(remote.rsplit(":", 1)[1], 16) == client_port):
                inodes.add(f"socket:[{inode}]")
    for pid in workers:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except OSError:
                continue
    return None


def connect_to_workers(port: int, workers: list[int]) -> dict[int, http.client.HTTPConnection]:
    """Open new connections (each answering a /health) until every worker holds one, or
    ``MAX_CONNECTIONS`` were tried; the others are closed."""
    by_worker: dict[int, http.client.HTTPConnection] = {}
    for _ in range(MAX_CONNECTIONS):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        status, _ = call(conn, "GET", "/health")
        assert status == 200
        assert conn.sock is not None
        pid = holder(port, conn.sock.getsockname()[1], workers)
        if pid is not None and pid not in by_worker:
            by_worker[pid] = conn
            if len(by_worker) == len(workers):
                break
        else:
            conn.close()
    return by_worker


def wait_all_started(workers: list[int]) -> Path:
    """The server's metrics folder, once every worker has written its first snapshot
    there (a worker does so when it has started: stores open, models loaded)."""
    environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
    folder = Path(next(v for v in environ if v.startswith(b"HEADWATER_SERVE_METRICS_DIR="))
                  .split(b"=", 1)[1].decode())
    deadline = time.monotonic() + START_S
    while len(list(folder.glob("*.json"))) < len(workers):
        assert time.monotonic() < deadline, f"not every worker started: {workers}"
        time.sleep(POLL_S)
    return folder


def production_yaml(project: str, postgres_url: str, schema: str, redis_url: str) -> str:
    return (f"project: {project}\n"
            f"registry:\n  url: {postgres_url}\n  schema: {schema}\n"
            f"online:\n  type: redis\n  url: {redis_url}\n")


@pytest.fixture
def server(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[Server]:
    """The churn repo (trained, promoted, materialized) on PostgreSQL + Redis, served by
    three workers, with a connection to each worker reached."""
    import psycopg
    import redis

    project = f"scale_{uuid.uuid4().hex[:10]}"  # the Redis key prefix: no collisions
    schema = f"hw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    folder = tmp_path
    process = None
    try:
        repo, start = recent_churn_repo(folder / "repo")
        (repo / "headwater.yaml").write_text(production_yaml(project, postgres_url, schema,
                                                             redis_url))
        with applied_store(repo) as store:
            store.promote("churn", store.train("churn").version)
            store.materialize(start - timedelta(days=1), datetime.now(UTC))
        port = free_port()
        log = folder / "serve.log"
        env = {**os.environ, "HEADWATER_API_KEYS": KEY, "NO_COLOR": "1"}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [headwater_script(), "serve", "--repo", str(repo), "--port", str(port),
                 "--workers", str(WORKERS)], stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_healthy(process, f"http://127.0.0.1:{port}", log, START_S)
        workers = worker_pids(process.pid)
        metrics_dir = wait_all_started(workers)
        by_worker = connect_to_workers(port, workers)
        yield Server(repo, project, process, port, log, workers, metrics_dir, by_worker)
    finally:
        if process is not None:
            stop_process(process, timeout=60)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"hw:{project}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def features(conn: http.client.HTTPConnection, refs: list[str],
             customers: list[int]) -> dict[str, Any]:
    status, body = call(conn, "POST", "/features", {
        "features": refs, "entities": [{"customer_id": c} for c in customers]})
    assert status == 200, body
    result: dict[str, Any] = orjson.loads(body)
    return result


def until_every_worker(server: Server, check: Any) -> None:
    """Poll ``check(conn)`` on each worker's connection until it is true on all of them."""
    deadline = time.monotonic() + DEADLINE_S
    pending = dict(server.by_worker)
    while pending and time.monotonic() < deadline:
        pending = {pid: conn for pid, conn in pending.items() if not check(conn)}
        if pending:
            time.sleep(POLL_S)
    assert not pending, f"workers {sorted(pending)} did not see it in {DEADLINE_S} s"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in a Prometheus text (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if found == labels:
            return float(match.group(4))
    return 0.0


def new_connections_reach_several_workers(server: Server) -> None:
    assert len(server.workers) == WORKERS
    assert len(server.by_worker) >= 2, "every connection went to one worker"
    for conn in server.by_worker.values():  # each answers on its own worker
        assert features(conn, ["customer_stats:spend_30d"], [1])["views"][
            "customer_stats"]["statuses"] == ["PRESENT"]


def a_push_through_one_worker_is_read_through_every_other(server: Server) -> None:
    (_, first), *others = server.by_worker.items()
    now = datetime.now(UTC).replace(microsecond=0)
    row = {"customer_id": 1, "ts": now.isoformat(), **dict.fromkeys(FEATURE_NAMES, 1.0),
           "spend_30d": 4321.5}
    status, body = call(first, "POST", "/push", {"view": "customer_stats", "rows": [row],
                                                 "to": "online"})
    assert status == 200, body
    for _, conn in others:
        got = features(conn, ["customer_stats:spend_30d"], [1, 2])
        assert got["results"]["spend_30d"][0] == 4321.5
        assert got["results"]["spend_30d"][1] != 4321.5


def predictions_work_on_every_worker_and_every_row_is_logged(server: Server) -> None:
    sent: dict[str, int] = {}
    versions = set()
    for pid, conn in server.by_worker.items():
        for customer in range(1, 11):
            status, body = call(conn, "POST", "/predict", {
                "model": "churn@production",
                "entities": [{"customer_id": customer}, {"customer_id": customer + 50}]})
            assert status == 200, body
            answer = orjson.loads(body)
            sent[answer["request_id"]] = pid
            versions.add(answer["version"])
    assert versions == {1}
    # each worker writes its own files (random names) every second: all rows land
    deadline = time.monotonic() + DEADLINE_S
    root = server.repo / "data" / "predictions"
    logged = read_log(root, "churn")
    while logged.num_rows < 2 * len(sent) and time.monotonic() < deadline:
        time.sleep(POLL_S)
        logged = read_log(root, "churn")
    ids = logged.column("request_id").to_pylist()
    assert sorted(set(ids)) == sorted(sent)
    assert len(ids) == 2 * len(sent)  # nothing written twice, nothing overwritten
    files = list(root.glob("churn/date=*/*.parquet"))
    assert len({f.name for f in files}) == len(files) >= len(server.by_worker)


def metrics_are_the_sum_over_the_workers(server: Server) -> None:
    per_worker = 7
    for conn in server.by_worker.values():  # requests only this test sends: unknown paths
        for _ in range(per_worker):
            status, _ = call(conn, "GET", f"/no-such-path-{uuid.uuid4().hex[:6]}")
            assert status == 404
    total = per_worker * len(server.by_worker)

    def scraped_total(conn: http.client.HTTPConnection) -> bool:
        status, body = call(conn, "GET", "/metrics")
        assert status == 200
        seen = metric(body.decode(), "headwater_http_requests_total", endpoint="other",
                      method="GET", status="404")
        assert seen <= total  # never more than was sent: no worker counted twice
        return seen == total

    until_every_worker(server, scraped_total)  # every scrape sees every worker's requests


def an_apply_from_another_process_reaches_every_worker(server: Server) -> None:
    for conn in server.by_worker.values():
        status, _ = call(conn, "POST", "/features", {
            "features": ["customer_stats_copy:spend_30d"], "entities": [{"customer_id": 1}]})
        assert status == 404
        assert features(conn, ["customer_stats:spend_30d"], [3])["views"][
            "customer_stats"]["statuses"] == ["PRESENT"]
    with hw.FeatureStore(server.repo) as store:  # the test process: another registry client
        view = store.get_feature_view("customer_stats")
        store.apply([replace(view, name="customer_stats_copy"),
                     replace(view, ttl=timedelta(seconds=1))])  # a new view; a changed one
        store.materialize(datetime.now(UTC) - timedelta(days=2), datetime.now(UTC),
                          views=["customer_stats_copy"])

    def new_definitions_served(conn: http.client.HTTPConnection) -> bool:
        status, body = call(conn, "POST", "/features", {
            "features": ["customer_stats_copy:spend_30d", "customer_stats:spend_30d"],
            "entities": [{"customer_id": 3}], "full_feature_names": True})
        if status == 404:
            return False
        assert status == 200, body
        views = orjson.loads(body)["views"]
        # the changed ttl (1 s) expires the value served so far; the new view is served
        return bool(views["customer_stats"]["statuses"] == ["EXPIRED"]
                    and views["customer_stats_copy"]["statuses"] == ["PRESENT"])

    until_every_worker(server, new_definitions_served)


def the_server_stops_with_its_workers_and_its_metrics_folder(server: Server) -> None:
    folder = server.metrics_dir
    assert sorted(int(p.name.split("-")[0]) for p in folder.glob("*.json")) == sorted(
        server.workers)  # one snapshot per worker
    for conn in server.by_worker.values():
        conn.close()
    stop_process(server.process, timeout=60)
    assert server.process.returncode == 0, server.log.read_text()
    assert [pid for pid in server.workers if running(pid)] == []
    assert not folder.exists()
    assert KEY not in server.log.read_text()


@pytest.mark.slow
def test_three_workers_on_postgresql_and_redis(server: Server) -> None:
    """One server for every step (they run in this order: the last one stops it)."""
    new_connections_reach_several_workers(server)
    a_push_through_one_worker_is_read_through_every_other(server)
    predictions_work_on_every_worker_and_every_row_is_logged(server)
    metrics_are_the_sum_over_the_workers(server)
    an_apply_from_another_process_reaches_every_worker(server)
    the_server_stops_with_its_workers_and_its_metrics_folder(server)


def test_shared_metrics_add_other_workers_snapshots(tmp_path: Path) -> None:
    """In process: a worker's scrape is its live counts plus the others' snapshot files."""
    mine, other = ServerMetrics(), ServerMetrics()
    for metrics, seconds in ((mine, 0.002), (other, 0.3)):
        metrics.request("/features", "POST", 200, seconds)
        metrics.push_rows.inc(("v", "online"), 5)
    other.predictions.inc(("churn", "1"), 2)
    SharedMetrics(tmp_path, other).save(other.snapshot())
    shared = SharedMetrics(tmp_path, mine)
    shared.name = "mine.json"  # the other snapshot is not this worker's own
    (tmp_path / "broken.json").write_bytes(b"{not json")  # skipped with a warning
    text = shared.render(mine.snapshot())
    assert metric(text, "headwater_http_requests_total", endpoint="/features",
                  method="POST", status="200") == 2
    assert metric(text, "headwater_push_rows_total", view="v", to="online") == 10
    assert metric(text, "headwater_predictions_total", model="churn", version="1") == 2
    assert metric(text, "headwater_http_request_duration_seconds_count",
                  endpoint="/features", status="200") == 2
    assert metric(text, "headwater_http_request_duration_seconds_bucket",
                  endpoint="/features", status="200", le="0.0025") == 1
    assert metric(text, "headwater_http_request_duration_seconds_sum",
                  endpoint="/features", status="200") == pytest.approx(0.302)
