"""Benchmark: ``POST /features`` against a real ``headwater serve``.

For each backend of the online workspace (:mod:`benchmarks.online`; every view materialized),
a ``headwater serve --no-auth`` subprocess (one worker, the default) listens on a free
loopback port; the parent polls ``GET /health`` until it answers (bounded). Then a client
in a fresh process (``python -m benchmarks.http client URL ...``) sends requests one after
another on one keep-alive ``httpx.Client``, random entities, after a warm-up, and times each
from sending the (pre-encoded) body to having read the whole response. Responses are parsed
after the clock stops, to count the records served.

There is no raw baseline for HTTP (no other server does the same work): the table shows
Feast 0.67's figures from issue 3 as the reference. The figures include the client's own
cost (httpx in Python, on the same two cores as the server), so the suite also measures a
**floor**: the same client against uvicorn (same loop and HTTP parser as ``headwater
serve``) running :func:`floor_app`, which parses the request JSON and answers the bytes
``headwater serve`` answered for a request of the same size, with no store behind it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import ROOT, child_report
from benchmarks.online import (
    BACKENDS,
    BATCH,
    VIEW,
    LatencyResult,
    Target,
    Workspace,
    entity_draws,
    feature_refs,
    percentiles_ms,
)
from headwater.testing.processes import free_port, stop_process

START_TIMEOUT_S = 60.0
FLOOR = "-"  # the backend column of the floor rows
FLOOR_ENV = "HEADWATER_BENCH_FLOOR_BODIES"


@dataclass(frozen=True)
class HttpOp:
    name: str
    entities: int
    target: Target
    feast: str


HTTP_OPS = (
    HttpOp("POST /features, 1 entity x 10 features, 1 view", 1, Target("p99", 1.2),
           "p50 1.7 / p99 2.4 ms"),
    HttpOp(f"POST /features, {BATCH} entities x 10 features, 1 view", BATCH,
           Target("p99", 3.0), "p50 10 ms"),
)


def _serve_command(repo: Path, port: int) -> list[str]:
    script = Path(sys.executable).with_name("headwater")
    head = ([str(script)] if script.exists() else
            [sys.executable, "-c", "from headwater.cli.main import main; main()"])
    return [*head, "serve", "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port),
            "--no-auth"]


@contextmanager
def server(repo: Path, log: Path) -> Iterator[str]:
    """A ``headwater serve --no-auth`` subprocess over ``repo``; yields its base URL once
    ``/health`` answers 200, and stops it on exit."""
    with _serving(lambda port: _serve_command(repo, port), log) as url:
        yield url


@contextmanager
def floor_server(bodies: Path, log: Path) -> Iterator[str]:
    """uvicorn running :func:`floor_app` with the responses in ``bodies``."""
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "benchmarks.http:floor_app", "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--no-access-log"]

    with _serving(command, log, {FLOOR_ENV: str(bodies)}) as url:
        yield url


@contextmanager
def _serving(command: Callable[[int], list[str]], log: Path,
             env: dict[str, str] | None = None) -> Iterator[str]:
    for attempt in range(3):  # another process may take the free port before the server
        port = free_port()
        with log.open("w") as out:
            process = subprocess.Popen(command(port), stdout=out, stderr=subprocess.STDOUT,
                                       cwd=ROOT, env={**os.environ, **(env or {})})
        url = f"http://127.0.0.1:{port}"
        try:
            if _wait_healthy(process, url):
                yield url
                return
        finally:
            stop_process(process)
        if attempt == 2:
            tail = "\n".join(log.read_text().splitlines()[-20:])
            raise RuntimeError(f"{command(port)[0]} did not come up on {url}:\n{tail}")


def floor_app() -> Callable[[Any, Any, Any], Awaitable[None]]:
    """The floor's ASGI app: ``POST /features`` answers the stored response for as many
    entities as the request has; anything else answers ``{}``."""
    import orjson

    bodies = {int(n): body.encode("latin-1")
              for n, body in json.loads(Path(os.environ[FLOOR_ENV]).read_text()).items()}
    headers = [(b"content-type", b"application/json")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"{}"
        if scope["path"] == "/features":
            body = bodies[len(orjson.loads(b"".join(chunks))["entities"])]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def _wait_healthy(process: subprocess.Popen[bytes], url: str) -> bool:
    """Poll ``GET /health`` until 200 (True) or the process exits or time runs out."""
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling for start-up, not timing anything
    return False


def run_http(ws: Workspace, repeat: int = 1, *, materialize: bool = True) -> list[LatencyResult]:
    """``POST /features`` per backend: one server each, ``repeat`` client runs, each in a
    fresh process; then the floor the same way. The table takes the median of each
    percentile over the runs."""
    results = []
    bodies = ws.root / "floor-bodies.json"
    for backend in BACKENDS:
        if materialize:
            ws.materialize_all(backend)
        with server(ws.repos[backend], ws.root / f"serve-{backend}.log") as url:
            reports = [_client(url, ws, run) for run in range(repeat)]
            if not bodies.exists():
                bodies.write_text(json.dumps(_sample_responses(url, ws.size.entities)))
        results += _results(backend, reports, ws.size.calls * repeat)
    with floor_server(bodies, ws.root / "serve-floor.log") as url:
        reports = [_client(url, ws, run) for run in range(repeat)]
    results += _results(FLOOR, reports, ws.size.calls * repeat)
    bodies.unlink()
    return results


def _results(backend: str, reports: list[dict[str, Any]], calls: int) -> list[LatencyResult]:
    import statistics

    results = []
    for op in HTTP_OPS:
        got = [r[op.name] for r in reports]
        results.append(LatencyResult(
            operation=op.name if backend != FLOOR else
            f"floor, {op.entities} entit{'y' if op.entities == 1 else 'ies'}: uvicorn + httpx, "
            "the same response bytes",
            backend=backend, keys=op.entities, calls=calls,
            headwater_ms=(statistics.median(g["ms"][0] for g in got),
                          statistics.median(g["ms"][1] for g in got)),
            baseline_ms=None,
            headwater_records=sum(g["records"] for g in got),
            baseline_records=None,
            target=op.target if backend != FLOOR else None,
            feast=op.feast if backend != FLOOR else "-",
        ))
    return results


def _sample_responses(url: str, entities: int) -> dict[int, str]:
    """One real response per op size, for the floor to answer."""
    import httpx

    out = {}
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for op in HTTP_OPS:
            (ids,) = entity_draws(entities, 1, op.entities, seed=99)
            response = client.post("/features", json={
                "features": feature_refs((VIEW,)),
                "entities": [{"driver_id": i} for i in ids]})
            response.raise_for_status()
            out[op.entities] = response.content.decode("latin-1")
    return out


def _client(url: str, ws: Workspace, run: int) -> dict[str, Any]:
    return child_report("http", "client", url, ws.size.calls, ws.size.warmup,
                        ws.size.entities, run)


def time_requests(url: str, calls: int, warmup: int, entities: int,
                  seed: int = 0) -> dict[str, dict[str, Any]]:
    """Child process: every op, sequential requests on one keep-alive client."""
    import httpx

    out = {}
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=10.0, headers=headers) as client:
        for n, op in enumerate(HTTP_OPS):
            draws = entity_draws(entities, warmup + calls, op.entities, seed * 10 + n)
            bodies = [json.dumps({"features": feature_refs((VIEW,)),
                                  "entities": [{"driver_id": i} for i in ids]}).encode()
                      for ids in draws]
            out[op.name] = _time_op(client, bodies, warmup)
    return out


def _time_op(client: Any, bodies: Sequence[bytes], warmup: int) -> dict[str, Any]:
    from headwater.serving.response import PRESENT

    post = client.post
    times: list[int] = []
    records = 0
    for i, body in enumerate(bodies):
        began = time.perf_counter_ns()
        response = post("/features", content=body)
        took = time.perf_counter_ns() - began
        if response.status_code != 200:
            raise RuntimeError(f"POST /features answered {response.status_code}: "
                               f"{response.text[:500]}")
        if i >= warmup:
            times.append(took)
            records += sum(s == PRESENT for view in response.json()["views"].values()
                           for s in view["statuses"])
    return {"ms": percentiles_ms(times), "records": records}


def main(argv: list[str]) -> None:
    """``client URL CALLS WARMUP ENTITIES SEED``: prints one JSON line."""
    if argv[0] != "client":
        raise SystemExit(f"unknown command {argv[0]!r}")
    url, (calls, warmup, entities, seed) = argv[1], map(int, argv[2:6])
    print(json.dumps(time_requests(url, calls, warmup, entities, seed)))


if __name__ == "__main__":
    main(sys.argv[1:])
