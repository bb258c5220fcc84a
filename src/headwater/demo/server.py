"""The demo's serving step: run ``headwater serve`` and read online features over HTTP.

The server is a real subprocess on a free loopback port, started with auth off (a local
demo), stopped when the step ends. Requests use one keep-alive connection, as a model
server would.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection, RemoteDisconnected
from pathlib import Path
from typing import Any

from headwater.errors import HeadwaterError, StoreUnavailableError
from headwater.testing.processes import free_port, stop_process

STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class ServedFeatures:
    """What the demo read from the server."""

    results: dict[str, list[Any]]
    statuses: dict[str, list[str]]
    requests: int
    p50_ms: float
    p99_ms: float


@contextmanager
def feature_server(repo: Path) -> Iterator[HTTPConnection]:
    """``headwater serve --no-auth`` on a free port; yields a connection once it is healthy."""
    port = free_port()
    command = [sys.executable, "-m", "headwater.cli.main", "serve", "--repo", str(repo),
               "--port", str(port), "--no-auth"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        connection = _wait_healthy(process, port)
        try:
            yield connection
        finally:
            connection.close()
    finally:
        stop_process(process)


def _wait_healthy(process: subprocess.Popen[str], port: int) -> HTTPConnection:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read() if process.stderr else ""
            raise HeadwaterError(f"the feature server exited with code {process.returncode}: "
                                 f"{error.strip()[-500:]}")
        connection = HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                return connection
            connection.close()
        except OSError:
            connection.close()
        time.sleep(0.05)  # polling a starting process; bounded by the deadline
    process.kill()
    raise StoreUnavailableError(f"the feature server on port {port} did not become healthy "
                                f"within {STARTUP_SECONDS:.0f} s")


def fetch(connection: HTTPConnection, service: str, entities: Sequence[dict[str, Any]],
          requests: int) -> ServedFeatures:
    """POST /features ``requests`` times for ``entities``; the last answer and latencies."""
    body = json.dumps({"feature_service": service, "entities": list(entities)})
    latencies = []
    answer: dict[str, Any] = {}
    for _ in range(requests):
        answer, ms = post(connection, "/features", body)
        latencies.append(ms)
    statuses = {view: meta["statuses"] for view, meta in answer["views"].items()}
    return ServedFeatures(answer["results"], statuses, requests, *_p50_p99(latencies))


def post(connection: HTTPConnection, path: str, body: str) -> tuple[dict[str, Any], float]:
    """POST ``body`` to ``path``: the JSON answer and the milliseconds it took.

    A keep-alive connection left idle past the server's keep-alive timeout (5 s) is closed
    by the server; the request then fails before the server read it, so it is sent again
    once on a new connection."""
    for attempt in range(2):
        started = time.perf_counter()
        try:
            connection.request("POST", path, body=body,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            break
        except (BrokenPipeError, ConnectionResetError, RemoteDisconnected):
            connection.close()  # the next request opens a new connection
            if attempt:
                raise
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise HeadwaterError(f"POST {path} answered {response.status}: "
                             f"{payload.decode(errors='replace')[:500]}")
    answer: dict[str, Any] = json.loads(payload)
    return answer, elapsed


def _p50_p99(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return (statistics.median(ordered),
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])


@dataclass(frozen=True)
class ServedPredictions:
    """What the demo got from ``POST /predict``: one answer per entity (asked one at a
    time, as an application scoring a request would) and the latencies of all requests."""

    model: str
    version: int
    predictions: list[Any]
    probabilities: list[float | None]
    requests: int
    p50_ms: float
    p99_ms: float


def predict_over_http(connection: HTTPConnection, model: str,
                      entities: Sequence[dict[str, Any]], requests: int) -> ServedPredictions:
    """POST /predict for one entity at a time, cycling through ``entities`` for
    ``requests`` requests; the last answer per entity and the latencies."""
    latencies = []
    answers: dict[int, dict[str, Any]] = {}
    for i in range(max(requests, len(entities))):
        index = i % len(entities)
        body = json.dumps({"model": model, "entities": [entities[index]]})
        answers[index], ms = post(connection, "/predict", body)
        latencies.append(ms)
    last = answers[len(entities) - 1]
    return ServedPredictions(
        last["model"], int(last["version"]),
        [answers[i]["predictions"][0] for i in range(len(entities))],
        [(answers[i].get("probabilities") or [None])[0] for i in range(len(entities))],
        len(latencies), *_p50_p99(latencies))
