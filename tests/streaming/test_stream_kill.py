"""Exactly-once under SIGKILL: ``headwater stream`` killed mid-batch, several times, then
restarted, leaves the online values and offline rows of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.streaming.stream_repo import (
    events,
    make_repo,
    payloads,
    publisher,
    stream_yaml,
    unique_topic,
)
from tests.streaming.test_consumer import check_offline, check_online

KILLS = 3


def files_done(repo: Path) -> int:
    return len(list((repo / "data" / "trips").glob("date=*/push-*.parquet")))


def command(repo: Path, idle_exit: float) -> list[str]:
    return [sys.executable, "-m", "headwater.cli.main", "stream", "--repo", str(repo),
            "--consumer", "c1", "--idle-exit", str(idle_exit)]


@pytest.mark.parametrize("kind", ["redis", "nats"])
def test_kill_9_mid_batch_then_restart_gives_the_uninterrupted_result(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = str(request.getfixturevalue("redis_url" if kind == "redis" else "nats_url"))
    topic = unique_topic()
    # NATS hands unacknowledged messages out again after ack_wait (the claim timeout)
    claim = 3.0
    repo = make_repo(tmp_path / "repo", topic, stream_yaml(kind, url, batch_size=400,
                                                          claim_timeout_s=claim))
    published = events(12_000, seed=11)
    with publisher(kind, url, topic) as pub:
        pub.publish(payloads(published))
        killed_with_work_left = 0
        for kill in range(KILLS):
            run = subprocess.Popen(command(repo, 60), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            try:
                target = files_done(repo) + 2 + kill  # a few batches in, then mid-batch
                deadline = time.monotonic() + 120
                while files_done(repo) < target and time.monotonic() < deadline:
                    if run.poll() is not None:
                        break
                    time.sleep(0.01)
                if run.poll() is None:
                    time.sleep(0.05 * kill)  # land at different points of a batch
                    os.kill(run.pid, signal.SIGKILL)
                    killed_with_work_left += 1
            finally:
                if run.poll() is None:
                    run.kill()
                run.wait(30)
        assert killed_with_work_left >= 1  # the kills hit a running consumer
        idle = 2.0 if kind == "redis" else claim + 4
        final = subprocess.run(command(repo, idle), capture_output=True, text=True,
                               timeout=300, check=False)
        assert final.returncode == 0, final.stderr
        check_online(repo, published)
        check_offline(repo, published)
