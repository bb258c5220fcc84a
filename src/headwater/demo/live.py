"""The demo's live step: stream trip events into the running server while it answers.

A producer pushes small batches of trip events, stamped with the current time, to the
server's ``POST /push`` under the stream source's name (the in-process stand-in for a Redis
or NATS stream, and the same ingest path), which appends them offline and updates the
windowed aggregates online. Meanwhile a reader on its own connection keeps asking
``POST /features`` for the live features, so serving latency is measured under write load.
After each batch the producer polls until the batch's last event is visible online
(``last_fare`` of its driver): that delay, from sending the push, is the freshness.

At the end the online values, read at one instant ``T`` in process, are compared with
``get_historical_features`` at ``T`` over the offline copy of the same events: the
consistency law for windowed aggregations.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPConnection
from typing import TYPE_CHECKING, Any

from headwater.demo.server import post
from headwater.errors import DataError, HeadwaterError

if TYPE_CHECKING:
    from headwater.store import FeatureStore

SOURCE = "trips"
"""The stream source the demo pushes to (see the repo template)."""
LIVE_VIEW = "driver_trips"
LIVE_FEATURES = ("trips_1h", "fare_mean_1h", "last_fare")
_FRESHNESS_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LiveStream:
    """What the live step measured."""

    events: int
    batches: int
    seconds: float
    reads: int
    read_p50_ms: float
    read_p99_ms: float
    fresh_p50_ms: float
    fresh_p99_ms: float


def _post_json(connection: HTTPConnection, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return post(connection, path, json.dumps(body))[0]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def _features() -> list[str]:
    return [f"{LIVE_VIEW}:{name}" for name in LIVE_FEATURES]


class _Reader(threading.Thread):
    """Reads the live features in a loop until stopped; records latencies and errors."""

    def __init__(self, connect: Callable[[], HTTPConnection], drivers: Sequence[int]) -> None:
        super().__init__(name="demo-reader", daemon=True)
        self._connect = connect
        self._body = {"features": _features(), "entities": [{"driver_id": d} for d in drivers]}
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.error: Exception | None = None

    def run(self) -> None:
        connection = self._connect()
        try:
            while not self.stop.is_set():
                started = time.perf_counter()
                _post_json(connection, "/features", self._body)
                self.latencies.append((time.perf_counter() - started) * 1000)
        except (HeadwaterError, OSError, ValueError) as exc:  # the producer re-raises it
            self.error = exc
        finally:
            connection.close()


def stream_live(connect: Callable[[], HTTPConnection], drivers: Sequence[int], *,
                batches: int = 40, batch_events: int = 50, seed: int = 0) -> LiveStream:
    """Push ``batches`` batches of ``batch_events`` trip events for ``drivers`` through the
    server, measuring freshness per batch and read latency throughout."""
    import numpy as np

    rng = np.random.default_rng([seed, 9])
    reader = _Reader(connect, drivers)
    producer = connect()
    freshness: list[float] = []
    events = 0
    started = time.perf_counter()
    reader.start()
    try:
        for _ in range(batches):
            now = datetime.now(UTC)
            chosen = rng.choice(np.asarray(drivers), size=batch_events)
            fares = np.round(rng.gamma(2.0, 9.0, size=batch_events) + 2.5, 2)
            rows = [{"driver_id": int(d), "ts": now.isoformat(), "fare": float(f),
                     "rating": int(r)}
                    for d, f, r in zip(chosen, fares, rng.integers(1, 6, batch_events),
                                       strict=True)]
            # the batch's last event has a fare no other event has: freshness probe
            rows[-1]["fare"] = round(1000.0 + events / 100.0, 2)
            sent = time.perf_counter()
            _post_json(producer, "/push", {"view": SOURCE, "rows": rows, "to": "both"})
            freshness.append(_visible(producer, rows[-1], sent))
            events += len(rows)
            if reader.error is not None:
                raise reader.error
    finally:
        reader.stop.set()
        reader.join(timeout=30)
        producer.close()
    if reader.error is not None:
        raise reader.error
    seconds = time.perf_counter() - started
    return LiveStream(events, batches, seconds, len(reader.latencies),
                      _percentile(reader.latencies, 0.5), _percentile(reader.latencies, 0.99),
                      _percentile(freshness, 0.5), _percentile(freshness, 0.99))


def _visible(connection: HTTPConnection, probe: dict[str, Any], sent: float) -> float:
    """Milliseconds from ``sent`` until the probe event's fare is served as ``last_fare``."""
    body = {"features": [f"{LIVE_VIEW}:last_fare"], "entities": [{"driver_id": probe["driver_id"]}]}
    deadline = sent + _FRESHNESS_TIMEOUT_S
    while True:
        answer = _post_json(connection, "/features", body)
        if answer["results"]["last_fare"][0] == probe["fare"]:
            return (time.perf_counter() - sent) * 1000
        if time.perf_counter() > deadline:
            raise DataError(f"a pushed event of driver {probe['driver_id']} was not served "
                            f"within {_FRESHNESS_TIMEOUT_S:.0f} s")
        time.sleep(0.001)  # bounded by the deadline


def check_consistency(store: FeatureStore, drivers: Sequence[int]) -> dict[str, list[Any]]:
    """Online values of the live features at one instant equal the training frame's there;
    returns them. DataError naming the feature when they differ."""
    import pyarrow as pa

    at = datetime.now(UTC)
    online = store.get_online_features(_features(), [{"driver_id": d} for d in drivers],
                                       now=at).to_dict()
    entity = pa.table({"driver_id": pa.array(list(drivers), pa.int64()),
                       "event_timestamp": pa.array([at] * len(drivers),
                                                   pa.timestamp("us", tz="UTC"))})
    offline = store.get_historical_features(entity, features=_features()).to_arrow().to_pydict()
    for name in LIVE_FEATURES:
        if not _same(online[name], offline[name]):
            raise DataError(f"online '{name}' {online[name]} differs from the training frame's "
                            f"{offline[name]} at {at}: the consistency law is broken")
    return {name: list(online[name]) for name in LIVE_FEATURES}


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and isinstance(y, float):
            if abs(x - y) > 1e-9 * max(abs(x), abs(y), 1.0):
                return False
        elif x != y:
            return False
    return True
