"""Redis stopped and started again while a real ``headwater serve`` takes traffic: every
answer while it is down is a 503 naming the store and the fix (never a 500, never a wrong
or partial value), the server never exits, and after the restart answers are 200 with
exactly the expected values, acknowledged pushes included (the test's Redis keeps an
fsynced AOF in its temp folder, so the values survive the restart)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from headwater.testing.processes import RedisServer, free_port, stop_process
from tests.serving.conftest import build_repo

KEY = "fault-test-key-0123456789"
PHASE_S = 1.5  # traffic before the stop, while down, and after the restart
FIXED = {1001: (0.5, 5), 1002: (0.6, 6)}  # materialized by build_repo
PUSHED = 1003  # the pusher's driver: trips = i, conv_rate = i / 1024
READ = {"features": ["globbed:conv_rate", "globbed:trips"],
        "entities": [{"driver_id": d} for d in (1001, 1002, PUSHED)]}


@dataclass
class Answer:
    began: float
    ended: float
    status: int | None  # None: no HTTP answer (the server did not respond)
    body: Any
    pushed: int | None = None  # for /push: the trips value sent


@dataclass
class Traffic:
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


def send(client: httpx.Client, traffic: Traffic, path: str, body: dict[str, Any],
         pushed: int | None = None) -> None:
    began = time.monotonic()
    try:
        response = client.post(path, json=body)
        status, payload = response.status_code, response.json()
    except (httpx.TransportError, ValueError) as exc:
        status, payload = None, repr(exc)
    traffic.record(Answer(began, time.monotonic(), status, payload, pushed))


def reader(url: str, traffic: Traffic) -> None:
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=10) as client:
        while not traffic.stop.is_set():
            send(client, traffic, "/features", READ)


def pusher(url: str, traffic: Traffic) -> None:
    i = 0
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=10) as client:
        while not traffic.stop.is_set():
            i += 1
            stamp = datetime(2024, 1, 3, tzinfo=UTC) + timedelta(seconds=i)  # newer each time
            row = {"driver_id": PUSHED, "event_timestamp": stamp.isoformat(),
                   "conv_rate": i / 1024, "trips": i}
            send(client, traffic, "/push", {"view": "globbed", "rows": [row]}, pushed=i)
            time.sleep(0.01)


def check_values(body: dict[str, Any]) -> int | None:
    """A 200 /features body holds exactly the expected values; returns the pushed driver's
    trips (None while nothing was pushed)."""
    results = body["results"]
    statuses = body["views"]["globbed"]["statuses"]
    assert results["driver_id"] == [1001, 1002, PUSHED]
    for index, (conv_rate, trips) in enumerate(FIXED.values()):
        assert (results["conv_rate"][index], results["trips"][index]) == (conv_rate, trips)
        assert statuses[index] == "PRESENT"
    trips = results["trips"][2]
    if trips is None:
        assert statuses[2] == "MISSING" and results["conv_rate"][2] is None
        return None
    assert statuses[2] == "PRESENT" and results["conv_rate"][2] == trips / 1024
    return int(trips)


def check_unavailable(answer: Answer, redis_url: str) -> None:
    assert answer.status == 503, answer
    error = answer.body["error"]
    assert error["type"] == "store_unavailable", answer
    assert "Redis" in error["message"] and "Fix:" in error["message"], answer
    assert redis_url in error["message"], answer


def wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", headers={"X-API-Key": KEY}).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            pytest.fail(f"headwater serve exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"headwater serve was not healthy within 90 s:\n{log.read_text()}")


def test_redis_stopped_and_restarted_under_traffic(
        tmp_path: Path, persistent_redis: RedisServer) -> None:
    redis_url = persistent_redis.url
    repo = build_repo(tmp_path / "repo", f"online: {{type: redis, url: '{redis_url}'}}\n",
                      project="redis_restart")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**os.environ, "HEADWATER_API_KEYS": KEY, "NO_COLOR": "1"}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "headwater.cli.main", "serve", "--repo", str(repo),
             "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    traffic = Traffic()
    threads = [threading.Thread(target=reader, args=(url, traffic)) for _ in range(2)]
    threads.append(threading.Thread(target=pusher, args=(url, traffic)))
    try:
        wait_healthy(server, url, log)
        for thread in threads:
            thread.start()
        time.sleep(PHASE_S)
        persistent_redis.stop()
        down = time.monotonic()
        time.sleep(PHASE_S)
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}) as client:
            health = client.get("/health")
            assert health.status_code == 503, health.text
            assert health.json()["checks"]["online_store"].startswith("unavailable")
        up_begins = time.monotonic()
        persistent_redis.start()  # the same port, the same AOF
        up = time.monotonic()
        time.sleep(PHASE_S)
        traffic.stop.set()
        for thread in threads:
            thread.join(30)
        assert server.poll() is None, log.read_text()  # the server never exited

        answers = sorted(traffic.answers, key=lambda a: a.began)
        acked = 0  # the last push answered 200
        phases = {"down": 0, "up": 0}
        for answer in answers:
            assert answer.status in (200, 503), answer  # never a 500, never no answer
            if answer.status == 503:
                check_unavailable(answer, redis_url)
            elif answer.pushed is None:
                trips = check_values(answer.body)
                if answer.began > up:  # no acknowledged push lost across the restart
                    assert (trips or 0) >= acked_before(answers, answer.began), answer
            else:
                acked = max(acked, answer.pushed)
            if down < answer.began and answer.ended < up_begins:
                assert answer.status == 503, answer
                phases["down"] += 1
            if answer.began > up:
                assert answer.status == 200, answer
                phases["up"] += 1
        assert phases["down"] >= 5 and phases["up"] >= 5, phases
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}) as client:
            final = client.post("/features", json=READ)
            assert final.status_code == 200, final.text
            assert check_values(final.json()) == acked
            assert client.get("/health").status_code == 200
        assert "Traceback" not in log.read_text()  # no unhandled error on the way
    finally:
        traffic.stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(30)
        stop_process(server)


def acked_before(answers: list[Answer], moment: float) -> int:
    """The highest trips value whose push was answered 200 before ``moment``."""
    return max((a.pushed for a in answers
                if a.pushed is not None and a.status == 200 and a.ended < moment), default=0)
