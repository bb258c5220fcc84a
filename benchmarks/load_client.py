"""The load client of :mod:`benchmarks.load`, run in a process of its own
(``python -m benchmarks.load_client client PORT SERVER_PID ENDPOINT CONNECTIONS SECONDS
WARMUP_S CUSTOMERS``, the key in ``$HEADWATER_BENCH_LOAD_KEY``).

``connections`` keep-alive HTTP/1.1 connections on asyncio (uvloop when installed), each a
closed loop over pre-encoded requests for random customers; only the status line and
Content-Length of an answer are parsed. It reads the CPU counters of the server's processes
(``/proc``) and its own at the start and the end of the measured window.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import process_tree

MODEL = "churn@production"
VIEW = "customer_stats"
KEY_ENV = "HEADWATER_BENCH_LOAD_KEY"
MAX_REQUESTS = 5_000_000
"""Per run, over all connections: the count bound next to the time bound."""
REQUEST_TIMEOUT_S = 10.0
BODIES = 4_096
"""Distinct pre-encoded requests per run (random entities), cycled."""


@dataclass(frozen=True)
class Plan:
    """What one client run does."""

    endpoint: str
    connections: int
    seconds: float
    warmup_s: float
    customers: int


def body(endpoint: str, customer: int) -> bytes:
    """The JSON body of one request for ``customer``."""
    from headwater.testing.models import FEATURE_NAMES

    if endpoint == "/features":
        return json.dumps({"features": [f"{VIEW}:{name}" for name in FEATURE_NAMES],
                           "entities": [{"customer_id": customer}]}).encode()
    return json.dumps({"model": MODEL, "entities": [{"customer_id": customer}]}).encode()


def _tree_cpu_s(pids: set[int]) -> float:
    """User + system CPU seconds of ``pids`` so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / ticks


class _Connection:
    """One keep-alive HTTP/1.1 connection running a closed loop."""

    def __init__(self, requests: Sequence[bytes], offset: int) -> None:
        self.requests = requests
        self.next = offset
        self.times: list[int] = []
        self.errors = 0
        self.first_error: str | None = None
        self.start = time.perf_counter()

    def _error(self, what: str, began: float) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = (f"{what} (request sent {began - self.start:.1f} s into the "
                                "run, warm-up included)")

    async def loop(self, port: int, measure_from: float, end: float, budget: list[int]
                   ) -> None:
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        clock = time.perf_counter
        self.start = clock()
        while clock() < end and budget[0] > 0:
            sent = clock()
            try:
                if stream is None:
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        stream = await asyncio.open_connection("127.0.0.1", port)
                reader, writer = stream
                request = self.requests[self.next % len(self.requests)]
                self.next += 1
                budget[0] -= 1
                began = time.perf_counter_ns()
                writer.write(request)
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    status = await _read_response(reader)
                took = time.perf_counter_ns() - began
                if status != 200:
                    self._error(f"HTTP {status}", sent)
                elif began / 1e9 >= measure_from:
                    self.times.append(took)
            except TimeoutError:
                self._error(f"no complete response within {REQUEST_TIMEOUT_S:g} s", sent)
                _drop(stream)
                stream = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self._error(f"{type(exc).__name__}: {exc}", sent)
                _drop(stream)
                stream = None
        _drop(stream)


def _drop(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    """Close ``stream`` (if any); the next request opens a new connection."""
    if stream is not None:
        stream[1].close()


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response with a Content-Length body; return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length is None:
        raise ValueError("response without Content-Length")
    await reader.readexactly(length)
    return status


def generate(port: int, server_pid: int, key: str, plan: Plan) -> dict[str, Any]:
    """Child process: ``plan.connections`` closed loops for ``plan.warmup_s`` +
    ``plan.seconds``; returns the row's measured fields."""
    import importlib.util

    import numpy as np

    ids = np.random.default_rng(plan.connections).integers(1, plan.customers + 1, size=BODIES)
    requests = []
    for customer in ids:
        content = body(plan.endpoint, int(customer))
        requests.append(
            f"POST {plan.endpoint} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
            f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(content)}\r\n\r\n".encode() + content)
    pool = [_Connection(requests, i * BODIES // plan.connections)
            for i in range(plan.connections)]
    server_pids = process_tree(server_pid)
    marks: dict[str, float] = {}

    async def main() -> None:
        start = time.perf_counter()
        measure_from = marks["from"] = start + plan.warmup_s
        end = measure_from + plan.seconds
        budget = [MAX_REQUESTS]
        tasks = [asyncio.ensure_future(c.loop(port, measure_from, end, budget)) for c in pool]
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        marks["began"] = time.perf_counter()
        marks["server0"], marks["client0"] = _tree_cpu_s(server_pids), time.process_time()
        await asyncio.gather(*tasks)
        marks["ended"] = time.perf_counter()
        marks["server1"], marks["client1"] = _tree_cpu_s(server_pids), time.process_time()

    if importlib.util.find_spec("uvloop") is not None:  # what uvicorn uses too
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
    # requests are counted by when they were sent, CPU between two reads of the counters
    window, wall = marks["ended"] - marks["from"], marks["ended"] - marks["began"]
    times = np.asarray([t for c in pool for t in c.times], dtype=np.float64)
    p50, p99, p999, top = (np.percentile(times, [50, 99, 99.9, 100]) / 1e6 if len(times)
                           else (float("nan"),) * 4)
    errors = [c for c in pool if c.errors]
    return {"requests": len(times), "errors": sum(c.errors for c in pool), "seconds": window,
            "p50_ms": float(p50), "p99_ms": float(p99), "p999_ms": float(p999),
            "max_ms": float(top),
            "server_cpu": 100 * (marks["server1"] - marks["server0"]) / wall,
            "client_cpu": 100 * (marks["client1"] - marks["client0"]) / wall,
            "first_error": errors[0].first_error if errors else None}


def main(argv: list[str]) -> None:
    """``client PORT SERVER_PID ENDPOINT CONNECTIONS SECONDS WARMUP_S CUSTOMERS`` (the key
    in ``$HEADWATER_BENCH_LOAD_KEY``): prints one JSON line."""
    if argv[0] != "client":
        raise SystemExit(f"unknown command {argv[0]!r}")
    plan = Plan(endpoint=argv[3], connections=int(argv[4]), seconds=float(argv[5]),
                warmup_s=float(argv[6]), customers=int(argv[7]))
    print(json.dumps(generate(int(argv[1]), int(argv[2]), os.environ[KEY_ENV], plan)))


if __name__ == "__main__":
    main(sys.argv[1:])
