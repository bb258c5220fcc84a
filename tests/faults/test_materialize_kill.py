"""``headwater materialize`` SIGKILLed mid-way, twice, then rerun: every entity's online
values (and event times and statuses) equal those of an uninterrupted run, on the SQLite
and on the Redis online store."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.repo.loader import load_definitions
from headwater.testing.processes import RedisServer

ENTITIES = 15_000
ROWS_PER_ENTITY = 3
T0 = datetime(2024, 1, 1, tzinfo=UTC)
START, END = T0 - timedelta(days=1), T0 + timedelta(days=2)
NOW = T0 + timedelta(days=3)
VIEW_FEATURES = {"speed": ("a", "b"), "rates": ("c",), "counts": ("n",)}
DEFINITIONS = '''
import headwater as hw

driver = hw.Entity("driver", join_keys=["driver_id"])
source = hw.FileSource("data/stats/", timestamp_field="ts")
speed = hw.FeatureView("speed", entities=[driver], source=source,
                       schema=[hw.Field("a", hw.Float64), hw.Field("b", hw.Float64)])
rates = hw.FeatureView("rates", entities=[driver], source=source,
                       schema=[hw.Field("c", hw.Float64)])
counts = hw.FeatureView("counts", entities=[driver], source=source,
                        schema=[hw.Field("n", hw.Int64)])
'''


def write_data(folder: Path) -> None:
    """ENTITIES drivers with ROWS_PER_ENTITY rows each at random times in [T0, T0 + 1 d)."""
    gen = np.random.default_rng(7)
    size = ENTITIES * ROWS_PER_ENTITY
    ids = np.repeat(np.arange(ENTITIES, dtype=np.int64), ROWS_PER_ENTITY)
    micros = int(T0.timestamp() * 1e6) + gen.integers(0, 86_400_000_000, size)
    table = pa.table({
        "driver_id": ids,
        "ts": pa.array(micros, pa.int64()).cast(pa.timestamp("us", "UTC")),
        "a": gen.random(size), "b": gen.random(size), "c": gen.random(size),
        "n": gen.integers(0, 1000, size),
    })
    folder.mkdir(parents=True)
    for part in range(4):
        pq.write_table(table.slice(part * size // 4, size // 4), folder / f"part-{part}.parquet")


def make_repo(folder: Path, online: str, project: str) -> Path:
    write_data(folder / "data" / "stats")
    (folder / "headwater.yaml").write_text(f"project: {project}\n{online}")
    (folder / "features.py").write_text(DEFINITIONS)
    with hw.FeatureStore(folder) as store:
        store.apply(load_definitions(folder))
    return folder


def materialize(repo: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "headwater.cli.main", "materialize",
                             START.isoformat(), END.isoformat(), "--repo", str(repo)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def online_state(repo: Path) -> dict[str, Any]:
    """Every entity's values, event time and status in every view, read at NOW."""
    rows = [{"driver_id": i} for i in range(ENTITIES)]
    state: dict[str, Any] = {}
    with hw.FeatureStore(repo) as store:
        for view, features in VIEW_FEATURES.items():
            response = store.get_online_features([f"{view}:{f}" for f in features], rows,
                                                 now=NOW)
            meta = response.metadata[view]
            state[view] = (response.to_dict(), meta.event_timestamps, meta.statuses)
    return state


def sqlite_records(repo: Path) -> Callable[[], int]:
    path = repo / ".headwater" / "online.db"

    def count() -> int:
        if not path.exists():
            return 0
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
                row = conn.execute("SELECT count(*) FROM hw_online").fetchone()
        except sqlite3.OperationalError:
            return 0  # not created yet, or busy
        return int(row[0]) if row else 0
    return count


def redis_records(url: str) -> Callable[[], int]:
    import redis

    client = redis.Redis.from_url(url)

    def count() -> int:
        return int(client.dbsize())  # type: ignore[arg-type]
    return count


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_materialize_killed_and_rerun_gives_the_uninterrupted_online_state(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("own_redis")
        online = f"online: {{type: redis, url: '{server.url}'}}\n"
    else:
        online = ""
    killed_repo = make_repo(tmp_path / "killed", online, "killed")
    reference = make_repo(tmp_path / "reference", online, "reference")
    total = ENTITIES * len(VIEW_FEATURES)
    count = (sqlite_records(killed_repo) if kind == "sqlite"
             else redis_records(server.url))  # the reference writes later: only ours now
    chance = random.Random(11)
    progress = []
    for _ in range(2):
        run = materialize(killed_repo)
        try:
            deadline = time.monotonic() + 120
            while count() <= (progress[-1] if progress else 0) and run.poll() is None:
                assert time.monotonic() < deadline, "materialize made no progress"
                time.sleep(0.005)
            time.sleep(chance.uniform(0.0, 0.1))
            run.kill()
        finally:
            run.wait(30)
        progress.append(count())
    assert progress[0] < total, "the first kill came after materialize finished"
    rerun = materialize(killed_repo)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()

    with hw.FeatureStore(reference) as store:  # uninterrupted
        store.materialize(START, END)
    got, want = online_state(killed_repo), online_state(reference)
    for view in VIEW_FEATURES:
        assert want[view][2].count("PRESENT") == ENTITIES
        assert got[view] == want[view], view
