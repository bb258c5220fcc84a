"""A ``headwater stream`` consumer SIGKILLed mid-batch, three times at random points, on a
redis-server of the test's own (stream and online store), then restarted: the online values
and the offline rows equal the brute-force expectation, nothing lost, nothing counted twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from headwater.testing.processes import RedisServer
from tests.streaming.stream_repo import (
    events,
    make_repo,
    offline_rows,
    payloads,
    publisher,
    stream_yaml,
    unique_topic,
)
from tests.streaming.test_consumer import check_offline, check_online

KILLS = 3
EVENTS = 8_000
BATCH = 400


def files_done(repo: Path) -> int:
    return len(list((repo / "data" / "trips").glob("date=*/push-*.parquet")))


def consumer(repo: Path, idle_exit: float) -> list[str]:
    return [sys.executable, "-m", "headwater.cli.main", "stream", "--repo", str(repo),
            "--consumer", "c1", "--idle-exit", str(idle_exit)]


def test_consumer_killed_mid_batch_on_a_private_redis_loses_and_doubles_nothing(
        tmp_path: Path, own_redis: RedisServer) -> None:
    url = own_redis.url
    topic = unique_topic()
    repo = make_repo(tmp_path / "repo", topic,
                     stream_yaml("redis", url, batch_size=BATCH, claim_timeout_s=60),
                     f"online: {{type: redis, url: '{url}'}}\n", project="consumer_kill")
    published = events(EVENTS, seed=5)
    chance = random.Random(20261127)  # fixed: a failure reproduces
    with publisher("redis", url, topic) as pub:
        pub.publish(payloads(published))
        killed = 0
        progress: list[int] = []  # events in the offline copy after each kill
        for _ in range(KILLS):
            run = subprocess.Popen(consumer(repo, 60), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            try:
                target = files_done(repo) + 1  # at least one batch committed, then more
                deadline = time.monotonic() + 120
                while (files_done(repo) < target and run.poll() is None
                       and time.monotonic() < deadline):
                    time.sleep(0.01)
                if run.poll() is None:
                    time.sleep(chance.uniform(0.0, 0.15))  # anywhere in a batch
                    os.kill(run.pid, signal.SIGKILL)
                    killed += 1
                    run.wait(30)
                    progress.append(offline_rows(repo).num_rows)
            finally:
                if run.poll() is None:
                    run.kill()
                run.wait(30)
        assert killed == KILLS
        assert progress[0] < EVENTS, progress  # the first kill at least came mid-way
        final = subprocess.run(consumer(repo, 2.0), capture_output=True, text=True,
                               timeout=300, check=False)
        assert final.returncode == 0, final.stderr
        check_online(repo, published)
        check_offline(repo, published)
