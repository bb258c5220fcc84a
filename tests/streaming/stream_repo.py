"""A repo fed by one StreamSource (trip events), publishers for Redis Streams and NATS
JetStream, and brute-force expected aggregates."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import headwater as hw
from headwater.testing.data import trip_events

DRIVER = hw.Entity("driver", join_keys=["driver_id"])
WINDOW = timedelta(hours=1)
FUNCTIONS = ("count", "sum", "mean", "max")
STAMP = pa.timestamp("us", "UTC")


def definitions(topic: str) -> list[Any]:
    """An aggregated view and a plain (latest value) view of one StreamSource."""
    source = hw.StreamSource("trips", timestamp_field="ts", topic=topic,
                             batch_source=hw.FileSource("data/trips/", timestamp_field="ts"))
    aggregated = hw.FeatureView(
        "driver_trips", entities=[DRIVER], source=source,
        aggregations=[hw.Aggregation("fare", f, WINDOW, name=f"fare_{f}") for f in FUNCTIONS])
    latest = hw.FeatureView("driver_last_trip", entities=[DRIVER], source=source,
                            schema=[hw.Field("fare", hw.Float64), hw.Field("rating", hw.Int64)])
    return [DRIVER, aggregated, latest]


def make_repo(folder: Path, topic: str, stream: str = "", online: str = "", *,
              project: str = "stream_test") -> Path:
    """A repo with an empty seed file in ``data/trips/`` (the schema), applied. A test that
    keeps online records in the shared Redis needs a ``project`` of its own."""
    (folder / "data" / "trips").mkdir(parents=True)
    (folder / "headwater.yaml").write_text(f"project: {project}\n{stream}{online}")
    seed = trip_events(1, 1, datetime(2020, 1, 1), datetime(2020, 1, 2)).slice(0, 0)
    pq.write_table(seed, folder / "data" / "trips" / "part-0.parquet")
    with hw.FeatureStore(folder) as store:
        store.apply(definitions(topic))
    return folder


def events(n: int, *, end: datetime | None = None, drivers: int = 5,
           seed: int = 0) -> pa.Table:
    """``n`` trip events in the two hours before ``end`` (default: a minute ago)."""
    end = end or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return trip_events(drivers, n, end - timedelta(hours=2), end, seed=seed)


def payloads(table: pa.Table) -> list[bytes]:
    """One JSON object per event, times as ISO-8601 strings."""
    rows = table.to_pylist()
    return [json.dumps({**row, "ts": row["ts"].isoformat()}).encode() for row in rows]


def expected(table: pa.Table, at: datetime, driver: int) -> dict[str, Any]:
    """The window rule by brute force: events with floor_h(at - W) <= ts < at (h = 1 min)."""
    h = timedelta(minutes=1)
    start = at - WINDOW
    start = start - (start - datetime(1970, 1, 1, tzinfo=UTC)) % h
    fares = [r["fare"] for r in table.to_pylist()
             if r["driver_id"] == driver and start <= r["ts"] < at]
    return {"fare_count": len(fares), "fare_sum": sum(fares) if fares else 0.0,
            "fare_mean": sum(fares) / len(fares) if fares else None,
            "fare_max": max(fares) if fares else None}


def online_values(store: hw.FeatureStore, at: datetime,
                  drivers: Sequence[int]) -> list[dict[str, Any]]:
    refs = [f"driver_trips:fare_{f}" for f in FUNCTIONS]
    response = store.get_online_features(refs, [{"driver_id": d} for d in drivers], now=at)
    columns = response.to_dict()
    return [{f"fare_{f}": columns[f"fare_{f}"][i] for f in FUNCTIONS}
            for i in range(len(drivers))]


def close_enough(got: dict[str, Any], want: dict[str, Any]) -> bool:
    for name, value in want.items():
        other = got[name]
        if value is None or other is None:
            if value != other:
                return False
        elif abs(other - value) > 1e-9 * max(1.0, abs(value)):
            return False
    return True


def offline_rows(repo: Path) -> pa.Table:
    """Every event in the visible partition files, sorted for comparison."""
    files = sorted((repo / "data" / "trips").glob("date=*/push-*.parquet"))
    if not files:
        return pa.table({"driver_id": pa.array([], pa.int64())})
    table = pa.concat_tables([pq.read_table(f) for f in files])
    return table.sort_by([("ts", "ascending"), ("driver_id", "ascending"),
                          ("fare", "ascending")])


def unique_topic() -> str:
    return f"hwtest.trips.{uuid.uuid4().hex[:10]}"


class RedisPublisher:
    """XADD events to a stream key; deletes the key and its dead letters at close."""

    def __init__(self, url: str, topic: str) -> None:
        import redis

        self.topic = topic
        self.client = redis.Redis.from_url(url, socket_timeout=10)

    def publish(self, data: Sequence[bytes]) -> list[str]:
        pipe = self.client.pipeline(transaction=False)
        for payload in data:
            pipe.xadd(self.topic, {"data": payload})
        return [i.decode() for i in pipe.execute()]

    def publish_fields(self, rows: Sequence[dict[str, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for row in rows:
            pipe.xadd(self.topic, row)  # type: ignore[arg-type]
        pipe.execute()

    def dead_letters(self) -> list[dict[bytes, bytes]]:
        return [fields for _, fields in self.client.xrange(self.topic + ".dead")]

    def close(self) -> None:
        self.client.delete(self.topic, self.topic + ".dead")
        self.client.close()


class NatsPublisher:
    """Publishes events to a subject (creating its stream as the reader does); deletes the
    streams at close."""

    def __init__(self, url: str, topic: str) -> None:
        self.url = url
        self.topic = topic
        self.loop = asyncio.new_event_loop()

    def _run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def _with_js(self, work: Any) -> Any:
        import nats

        client = await nats.connect(self.url, connect_timeout=5)
        try:
            return await work(client.jetstream())
        finally:
            await client.close()

    def publish(self, data: Sequence[bytes]) -> list[str]:
        from headwater.streaming.nats import _ensure_stream, message_id

        async def work(js: Any) -> list[str]:
            stream = await _ensure_stream(js, self.topic)
            futures = [await js.publish_async(self.topic, payload) for payload in data]
            acks = [await f for f in futures]
            created = (await js.stream_info(stream)).created  # ids as the reader makes them
            return [message_id(created, a.seq) for a in acks]

        result: list[str] = self._run(self._with_js(work))
        return result

    def dead_letters(self) -> list[tuple[bytes, dict[str, str]]]:
        from headwater.streaming.nats import stream_name

        async def work(js: Any) -> list[tuple[bytes, dict[str, str]]]:
            out = []
            info = await js.stream_info(stream_name(self.topic + ".dead"))
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                if info.state.messages == 0:
                    break
                msg = await js.get_msg(stream_name(self.topic + ".dead"), seq)
                out.append((msg.data, dict(msg.headers or {})))
            return out

        result: list[tuple[bytes, dict[str, str]]] = self._run(self._with_js(work))
        return result

    def close(self) -> None:
        from headwater.streaming.nats import stream_name

        async def work(js: Any) -> None:
            import nats.js.errors

            for name in (stream_name(self.topic), stream_name(self.topic + ".dead")):
                with suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(name)

        self._run(self._with_js(work))
        self.loop.close()


@contextmanager
def publisher(kind: str, url: str, topic: str) -> Iterator[RedisPublisher | NatsPublisher]:
    pub: RedisPublisher | NatsPublisher = (RedisPublisher(url, topic) if kind == "redis"
                                           else NatsPublisher(url, topic))
    try:
        yield pub
    finally:
        pub.close()


def stream_yaml(kind: str, url: str, *, batch_size: int = 500,
                claim_timeout_s: float = 60) -> str:
    return (f"stream:\n  type: {kind}\n  url: {url}\n  batch_size: {batch_size}\n"
            f"  block_ms: 200\n  claim_timeout_s: {claim_timeout_s}\n")
