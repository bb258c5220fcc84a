"""Several ``headwater stream`` processes in one group, on Redis Streams and on NATS
JetStream, over the production online store (Redis): three consumers share a stream, a
fourth joins mid-stream, one is stopped (SIGTERM: it finishes its batch) and one is killed
(SIGKILL: its unacknowledged messages are claimed by the others after the claim timeout);
the online values and the offline rows are exactly those of one consumer reading it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.testing.data import trip_events
from tests.streaming.stream_repo import (
    NatsPublisher,
    RedisPublisher,
    definitions,
    events,
    payloads,
    publisher,
    stream_yaml,
    unique_topic,
)
from tests.streaming.test_consumer import check_offline, check_online

EVENTS = 8_000
BATCH = 100
FIRST = 3_000
"""Events published before the consumers start; the others trickle in while the test waits
for a consumer to start or stop (so none goes idle and exits meanwhile, however slow the
machine), all but the last quarter come at once when the fourth consumer has joined, and
the last quarter once one consumer is killed (work for the others however fast they are)."""
LAST = EVENTS // 4
TRICKLE = 20
TRICKLE_S = 0.5
CLAIM_S = 2.0
IDLE_EXIT_S = 5.0
"""Longer than the claim timeout, so the survivors claim a killed consumer's messages."""
DEADLINE_S = 120.0


def events_done(repo: Path) -> int:
    """Events committed so far: the rows of the visible offline files."""
    return sum(pq.read_metadata(f).num_rows
               for f in (repo / "data" / "trips").glob("date=*/push-*.parquet"))


def consumer(repo: Path, name: str, idle_exit: float = IDLE_EXIT_S) -> subprocess.Popen[bytes]:
    """``headwater stream --consumer name``, its output in ``<repo>/../<name>.out|err``."""
    with (repo.parent / f"{name}.out").open("wb") as out, \
            (repo.parent / f"{name}.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "headwater.cli.main", "stream", "--repo", str(repo),
             "--consumer", name, "--idle-exit", str(idle_exit)], stdout=out, stderr=err)


def consuming(repo: Path, name: str) -> bool:
    """Whether consumer ``name`` started consuming (its signal handlers are installed)."""
    return b"consuming " in (repo.parent / f"{name}.err").read_bytes()


def output(repo: Path, name: str) -> str:
    """Consumer ``name``'s stdout and stderr so far."""
    return (repo.parent / f"{name}.out").read_text() + (repo.parent / f"{name}.err").read_text()


class Trickle:
    """The events not published yet: :meth:`step` publishes ``TRICKLE`` of them at most
    every ``TRICKLE_S`` seconds, :meth:`rest` all that are left."""

    def __init__(self, pub: RedisPublisher | NatsPublisher, data: list[bytes]) -> None:
        self.pub = pub
        self.data = data
        self.sent = 0
        self.last = float("-inf")

    def step(self) -> None:
        if self.sent < len(self.data) and time.monotonic() - self.last >= TRICKLE_S:
            self.pub.publish(self.data[self.sent:self.sent + TRICKLE])
            self.sent = min(self.sent + TRICKLE, len(self.data))
            self.last = time.monotonic()

    def rest(self) -> None:
        self.pub.publish(self.data[self.sent:])
        self.sent = len(self.data)


def wait_for(condition: Callable[[], bool], what: str,
             runs: dict[str, subprocess.Popen[bytes]], output: Callable[[str], str],
             trickle: Trickle) -> None:
    """Poll ``condition()`` until true (bounded), publishing a trickle of events meanwhile;
    fail early if a consumer exited."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        trickle.step()
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {DEADLINE_S} s")
        exited = [name for name, run in runs.items() if run.poll() is not None]
        if exited:
            pytest.fail(f"consumer(s) {exited} exited before {what}: "
                        f"{[output(name) for name in exited]}")
        time.sleep(0.02)


def handled(output: str) -> int:
    """Events a consumer applied, from its summary line."""
    return int(output.strip().splitlines()[-1].split(" events")[0].replace(",", ""))


@pytest.fixture(params=["redis", "nats"])
def stream_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def repo(stream_kind: str, request: pytest.FixtureRequest, redis_url: str,
         tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A repo (its own project: its own Redis keys) whose views read one stream topic;
    the online store is Redis. Yields the repo, the stream URL and the topic."""
    import redis

    url = str(request.getfixturevalue("redis_url" if stream_kind == "redis" else "nats_url"))
    topic = unique_topic()
    project = f"stream_scale_{uuid.uuid4().hex[:10]}"
    folder = tmp_path / "repo"
    (folder / "data" / "trips").mkdir(parents=True)
    (folder / "headwater.yaml").write_text(
        f"project: {project}\n"
        + stream_yaml(stream_kind, url, batch_size=BATCH, claim_timeout_s=CLAIM_S)
        + f"online:\n  type: redis\n  url: {redis_url}\n")
    seed = trip_events(1, 1, datetime(2020, 1, 1), datetime(2020, 1, 2)).slice(0, 0)
    pq.write_table(seed, folder / "data" / "trips" / "part-0.parquet")
    with hw.FeatureStore(folder) as store:
        store.apply(definitions(topic))
    try:
        yield folder, url, topic
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"hw:{project}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def test_consumers_joining_stopping_and_dying_mid_stream_apply_each_event_once(
        stream_kind: str, repo: tuple[Path, str, str]) -> None:
    folder, url, topic = repo
    published = events(EVENTS, seed=21)
    data = payloads(published)
    runs: dict[str, subprocess.Popen[bytes]] = {}

    def says(name: str) -> str:
        return output(folder, name)

    def others(*names: str) -> dict[str, subprocess.Popen[bytes]]:
        return {k: v for k, v in runs.items() if k not in names}

    try:
        with publisher(stream_kind, url, topic) as pub:
            pub.publish(data[:FIRST])
            trickle = Trickle(pub, data[FIRST:EVENTS - LAST])
            # the first consumer alone first: it takes part before it is stopped
            runs["a"] = consumer(folder, "a")
            wait_for(lambda: consuming(folder, "a") and events_done(folder) >= BATCH,
                     "the first consumer's first batch", runs, says, trickle)
            runs.update((name, consumer(folder, name)) for name in ("b", "c"))
            wait_for(lambda: events_done(folder) >= 5 * BATCH, "five batches committed",
                     runs, says, trickle)
            runs["a"].send_signal(signal.SIGTERM)  # stopped: finishes its batch, acks, exits
            wait_for(lambda: runs["a"].poll() is not None, "the first consumer stopped",
                     others("a"), says, trickle)
            runs["d"] = consumer(folder, "d")  # joins the group mid-stream
            wait_for(lambda: consuming(folder, "d"), "the fourth consumer started",
                     others("a"), says, trickle)
            trickle.rest()
            wait_for(lambda: events_done(folder) >= EVENTS // 2, "half the events committed",
                     others("a"), says, trickle)
            os.kill(runs["b"].pid, signal.SIGKILL)  # its unacknowledged batch is claimed
            pub.publish(data[EVENTS - LAST:])  # work for the others after the kill
            for run in runs.values():
                run.wait(DEADLINE_S)
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
            run.wait(30)
    assert runs["b"].returncode == -signal.SIGKILL
    for name in ("a", "c", "d"):
        assert runs[name].returncode == 0, output(folder, name)
    counts = {name: handled((folder.parent / f"{name}.out").read_text())
              for name in ("a", "c", "d")}
    assert all(counts.values()), counts  # each took part, the late one too
    assert sum(counts.values()) <= EVENTS  # b applied the rest (or some of it)
    # the killed consumer restarted under its name (as an operator does) publishes or
    # deletes the hidden pending files it left; it finds no message left to apply
    restarted = consumer(folder, "b", idle_exit=1.0)
    assert restarted.wait(DEADLINE_S) == 0, output(folder, "b")
    assert handled((folder.parent / "b.out").read_text()) == 0
    check_online(folder, published)  # exact aggregates: no event lost or counted twice
    check_offline(folder, published)  # every event once in the offline copy
