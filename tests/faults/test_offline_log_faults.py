"""The offline log on a read-only folder (EROFS) and on a full disk (ENOSPC), real faults
from a small tmpfs: a clear error naming the folder and the fix, and nothing lost.

* push to offline (and ``to="both"``, in Python and over HTTP): the push fails, writes no
  file, leaves no temporary file and changes nothing online; once the fault is cleared the
  same push works;
* ``headwater stream``: the consumer stops with the error, its messages stay
  unacknowledged, and a restart after the fault is cleared applies every event once;
* the prediction log keeps the rows it could not write (counted, logged with the folder and
  the fix) and writes them once the fault is cleared, each once.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.errors import StoreUnavailableError
from headwater.inference.log import PredictionLog, PredictionRecord, read_log
from headwater.serving.http import create_app
from headwater.testing.processes import RedisServer
from tests.faults.conftest import FaultyFolder
from tests.streaming import stream_repo
from tests.streaming.conftest import DRIVER, T0, make_repo, views
from tests.streaming.test_consumer import check_offline, check_online

FAULTS = ["read_only", "full"]
Faulty = Callable[[Path], FaultyFolder]


def break_folder(folder: FaultyFolder, fault: str, leave: int = 0) -> None:
    if fault == "read_only":
        folder.read_only()
    else:
        folder.fill(leave)


def clear(folder: FaultyFolder, fault: str) -> None:
    if fault == "read_only":
        folder.writable()
    else:
        folder.free_space()


def listing(folder: Path) -> set[str]:
    """Every file under ``folder`` (hidden ones too) but the filler."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and p.name != ".filler"}


def conv_rate_online(store: hw.FeatureStore, driver: int) -> float:
    response = store.get_online_features(["stats:conv_rate"], [{"driver_id": driver}],
                                         now=T0 + timedelta(hours=2))
    value: float = response.to_dict()["conv_rate"][0]
    return value


@pytest.mark.parametrize("fault", FAULTS)
def test_offline_push_fails_clearly_and_writes_nothing(fault: str, tmp_path: Path,
                                                       faulty: Faulty) -> None:
    repo = make_repo(tmp_path / "repo", project="offline_faults")
    row = {"driver_id": 1001, "event_timestamp": (T0 + timedelta(hours=1)).isoformat(),
           "created": (T0 + timedelta(hours=1)).isoformat(), "conv_rate": 0.875, "trips": 9,
           "unused": "z"}
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, *views()])
        store.materialize(T0 - timedelta(days=1), T0 + timedelta(minutes=1))
        assert conv_rate_online(store, 1001) == 0.5
        folder = faulty(repo / "data" / "stats")
        before = listing(folder.folder)
        break_folder(folder, fault)
        for to in ("offline", "both"):
            with pytest.raises(StoreUnavailableError) as error:
                store.push("stats", [row], to=to)
            message = str(error.value)
            assert str(folder.folder) in message and "Fix:" in message, message
            assert listing(folder.folder) == before  # no file, no temporary file
            assert conv_rate_online(store, 1001) == 0.5  # nothing online either
        with TestClient(create_app(store, api_keys=None)) as client:
            answer = client.post("/push", json={"view": "stats", "rows": [row], "to": "both"})
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["type"] == "store_unavailable"
            assert str(folder.folder) in answer.json()["error"]["message"]
        assert listing(folder.folder) == before
        assert conv_rate_online(store, 1001) == 0.5

        clear(folder, fault)
        result = store.push("stats", [row], to="both")
        assert result.offline_file is not None and result.offline_file.exists()
        assert conv_rate_online(store, 1001) == 0.875
        frame = store.get_historical_features(
            pa.table({"driver_id": [1001], "event_timestamp": pa.array(
                [T0 + timedelta(hours=2)], pa.timestamp("us", "UTC"))}),
            ["stats:conv_rate"]).to_arrow()
        assert frame.column("conv_rate").to_pylist() == [0.875]
        assert len(listing(folder.folder)) == len(before) + 1


def test_a_push_of_several_dates_writes_all_files_or_none(tmp_path: Path,
                                                          faulty: Faulty) -> None:
    """Events of two dates make two files; a disk with room for one of them fails the push
    with nothing visible (the first file is not left behind to be pushed twice), and the
    same push after the fault is cleared lands every event once."""
    from datetime import UTC, datetime

    repo = stream_repo.make_repo(tmp_path / "repo", stream_repo.unique_topic(),
                                 project="log_faults_dates")
    pushed = stream_repo.events(6, end=datetime(2024, 3, 2, 1, tzinfo=UTC), seed=4)
    assert len({ts.date() for ts in pushed.column("ts").to_pylist()}) == 2
    folder = faulty(repo / "data" / "trips")
    before = listing(folder.folder)
    with hw.FeatureStore(repo) as store:
        folder.fill(leave=4096)  # one page: room for one small file, not two
        with pytest.raises(StoreUnavailableError) as error:
            store.push("trips", pushed, to="offline")
        assert str(folder.folder) in str(error.value) and "Fix:" in str(error.value)
        assert listing(folder.folder) == before  # no file of either date, no temporary file
        assert stream_repo.offline_rows(repo).num_rows == 0

        folder.free_space()
        result = store.push("trips", pushed, to="offline")
    assert len(result.offline_files) == 2
    assert len(listing(folder.folder)) == len(before) + 2
    got = stream_repo.offline_rows(repo)
    want = pushed.sort_by([("ts", "ascending"), ("driver_id", "ascending"),
                           ("fare", "ascending")])
    assert got.select(want.column_names).to_pylist() == want.to_pylist()


def pending_entries(url: str, topic: str) -> int:
    import redis

    with redis.Redis.from_url(url) as client:
        return int(client.xpending(topic, "headwater")["pending"])


@pytest.mark.parametrize("fault", FAULTS)
def test_stream_consumer_stops_on_the_fault_and_applies_everything_after(
        fault: str, tmp_path: Path, faulty: Faulty, own_redis: RedisServer) -> None:
    topic = stream_repo.unique_topic()
    repo = stream_repo.make_repo(
        tmp_path / "repo", topic,
        stream_repo.stream_yaml("redis", own_redis.url, batch_size=200), project="log_faults")
    published = stream_repo.events(2_000, seed=3)
    folder = faulty(repo / "data" / "trips")
    # a full disk leaves room for a few batches: the consumer fails mid-way
    break_folder(folder, fault, leave=48 * 1024)
    command = [sys.executable, "-m", "headwater.cli.main", "stream", "--repo", str(repo),
               "--consumer", "c1", "--idle-exit", "2"]
    with stream_repo.publisher("redis", own_redis.url, topic) as pub:
        pub.publish(stream_repo.payloads(published))
        failed = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                check=False)
        assert failed.returncode == 1, failed.stderr
        assert str(folder.folder) in failed.stderr and "Fix:" in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr, failed.stderr
        applied = stream_repo.offline_rows(repo).num_rows
        assert applied < published.num_rows
        if fault == "full":  # the disk filled up after a few batches
            assert applied > 0
        assert pending_entries(own_redis.url, topic) > 0  # delivered, not acknowledged

        clear(folder, fault)
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert pending_entries(own_redis.url, topic) == 0
        check_online(repo, published)
        check_offline(repo, published)


def record(i: int) -> PredictionRecord:
    at = int((T0 + timedelta(seconds=i)).timestamp() * 1_000_000)
    return PredictionRecord(f"req-{i}", at, "churn", 1, {"driver_id": [i, i + 1]},
                            {"conv_rate": [i / 8, i / 16]}, {},
                            np.array([i % 2, (i + 1) % 2]), None)


@pytest.mark.parametrize("fault", FAULTS)
def test_prediction_log_keeps_rows_until_the_fault_is_cleared(
        fault: str, tmp_path: Path, faulty: Faulty, caplog: pytest.LogCaptureFixture) -> None:
    folder = faulty(tmp_path / "predictions")
    log = PredictionLog(folder.folder, flush_seconds=60)
    try:
        break_folder(folder, fault)
        with caplog.at_level(logging.ERROR, logger="headwater.inference.log"):
            for i in range(50):
                assert log.log(record(i))
            assert log.flush()
            assert log.flush()  # tried again, still failing: kept, not lost
        assert (log.written_rows, log.failed_rows, log.dropped_rows) == (0, 0, 0)
        assert log.retry_rows == 100
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors and all(str(folder.folder) in e and "Fix:" in e for e in errors), errors
        assert listing(folder.folder) == set()  # no temporary file left behind

        clear(folder, fault)
        for i in range(50, 60):
            assert log.log(record(i))
        assert log.flush()
        assert (log.written_rows, log.failed_rows, log.retry_rows) == (120, 0, 0)
        logged = read_log(folder.folder, "churn")
        assert sorted(logged.column("request_id").to_pylist()) == sorted(
            f"req-{i}" for i in range(60) for _ in range(2))

        break_folder(folder, fault)  # still broken at shutdown: the loss is reported
        caplog.clear()
        assert log.log(record(60))
        with caplog.at_level(logging.ERROR, logger="headwater.inference.log"):
            log.close()
        assert (log.written_rows, log.failed_rows, log.retry_rows) == (120, 2, 0)
        lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
        assert lost and str(folder.folder) in lost[0] and "Fix:" in lost[0], lost
    finally:
        log.close()
