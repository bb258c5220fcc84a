"""Materialization: latest row per entity online, watermarks, idempotent reruns, kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.online.base import ViewKeys
from headwater.online.encoding import encode_key
from headwater.testing.data import driver_stats

START = datetime(2024, 1, 1, tzinfo=UTC)
DRIVER = hw.Entity("driver", join_keys=["driver_id"])
N_DRIVERS, N_HOURS = 300, 48


def views() -> list[hw.FeatureView]:
    return [
        hw.FeatureView(
            name, entities=[DRIVER],
            source=hw.FileSource("data/driver_stats.parquet", "event_timestamp", "created"),
            schema=[hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int64)],
            ttl=timedelta(days=2),
        )
        for name in ("stats_a", "stats_b", "stats_c")
    ]


def make_repo(folder: Path, online: str, project: str = "mat") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    (folder / "headwater.yaml").write_text(f"project: {project}\n{online}")
    pq.write_table(driver_stats(N_DRIVERS, N_HOURS, start=START, seed=3),
                   folder / "data" / "driver_stats.parquet")
    return folder


@pytest.fixture(params=["sqlite", "redis"])
def backend_repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A repo on SQLite, or on the shared Redis under a project name of its own."""
    if request.param == "sqlite":
        yield make_repo(tmp_path / "repo", ""), "mat"
        return
    url = request.getfixturevalue("redis_url")
    project = f"mat_{uuid.uuid4().hex[:10]}"
    yield make_repo(tmp_path / "repo", f"online: {{type: redis, url: '{url}'}}\n",
                    project), project
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"hw:{project}:*", count=1000):
        client.delete(key)
    client.close()


def online_state(store: hw.FeatureStore) -> dict[str, list[bytes | None]]:
    keys = [encode_key(["driver_id"], [1001 + i]) for i in range(N_DRIVERS)]
    names = [v.name for v in views()]
    return dict(zip(names, store.online.read([ViewKeys(n, keys) for n in names]), strict=True))


def test_materialize_serves_the_latest_row_and_records_watermarks(
        backend_repo: tuple[Path, str]) -> None:
    repo, project = backend_repo
    end = START + timedelta(hours=30)
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, *views()])
        written: list[int] = []
        results = store.materialize(START, end, progress=lambda view, rows: written.append(rows))
        assert [r.rows for r in results] == [N_DRIVERS] * 3
        assert sum(written) == 3 * N_DRIVERS
        marks = store.registry.backend.watermarks(project)
        assert {name: mark[1] for name, mark in marks.items()} == {
            "stats_a": end, "stats_b": end, "stats_c": end}

        rows = [{"driver_id": 1001 + i} for i in range(0, N_DRIVERS, 7)]
        online = store.get_online_features(["stats_a:conv_rate", "stats_b:trips"], rows, now=end)
        entity_df = pa.table({"driver_id": pa.array([r["driver_id"] for r in rows], pa.int64()),
                              "event_timestamp": pa.array([end] * len(rows),
                                                          pa.timestamp("us", "UTC"))})
        offline = store.get_historical_features(
            entity_df, ["stats_a:conv_rate", "stats_b:trips"]).to_arrow().to_pydict()
        got = online.to_dict()
        assert got["conv_rate"] == offline["conv_rate"]
        assert got["trips"] == offline["trips"]
        assert set(online.metadata["stats_a"].statuses) == {"PRESENT"}
        assert online.metadata["stats_a"].event_timestamps[0] == end


def test_rerun_is_idempotent_and_incremental_continues_from_the_watermark(
        backend_repo: tuple[Path, str]) -> None:
    repo, _ = backend_repo
    middle, end = START + timedelta(hours=20), START + timedelta(hours=N_HOURS)
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, *views()])
        store.materialize(START, middle)
        first = online_state(store)
        store.materialize(START, middle)
        assert online_state(store) == first
        results = store.materialize_incremental(end)
        assert [(r.start, r.end) for r in results] == [(middle, end)] * 3
        response = store.get_online_features(["stats_c:trips"], [{"driver_id": 1001}], now=end)
        assert response.metadata["stats_c"].event_timestamps == [end - timedelta(hours=1)]
        assert store.materialize_incremental(end - timedelta(hours=1)) == []


def test_older_rows_never_replace_newer_online_values(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "")
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, *views()])
        late = START + timedelta(hours=40)
        store.materialize(START + timedelta(hours=30), late)
        newest = online_state(store)
        store.materialize(START, START + timedelta(hours=10))  # an old backfill afterwards
        assert online_state(store) == newest


def test_a_changed_view_is_missing_online_until_materialized_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "")
    end = START + timedelta(hours=10)
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, *views()])
        store.materialize(START, end)
        changed = hw.FeatureView(
            "stats_a", entities=[DRIVER],
            source=hw.FileSource("data/driver_stats.parquet", "event_timestamp", "created"),
            schema=[hw.Field("trips", hw.Int64)], ttl=timedelta(days=2))
        store.apply([changed])
        response = store.get_online_features(["stats_a:trips"], [{"driver_id": 1001}], now=end)
        assert response.metadata["stats_a"].statuses == ["MISSING"]
        # the watermark belongs to the old version: incremental starts over from the ttl
        results = store.materialize_incremental(end, views=["stats_a"])
        assert results[0].start == end - timedelta(days=2)
        response = store.get_online_features(["stats_a:trips"], [{"driver_id": 1001}], now=end)
        assert response.metadata["stats_a"].statuses == ["PRESENT"]


KILLER = textwrap.dedent("""
    import os, signal, sys
    from datetime import datetime, timezone
    import headwater as hw
    from headwater.offline.duckdb import DuckDBEngine
    store = hw.FeatureStore(sys.argv[1])
    store._offline = DuckDBEngine(store.settings, batch_size=50)
    batches = []
    def progress(view, rows):
        batches.append(view)
        if len(batches) == 3:          # killed mid-run: inside the first view, after 3 batches
            os.kill(os.getpid(), signal.SIGKILL)
    store.materialize_incremental(datetime.fromisoformat(sys.argv[2]), progress=progress)
""")


def test_a_killed_materialization_resumes_to_the_same_online_state(tmp_path: Path) -> None:
    end = START + timedelta(hours=N_HOURS)
    killed = make_repo(tmp_path / "killed", "")
    clean = make_repo(tmp_path / "clean", "")
    for repo in (killed, clean):
        with hw.FeatureStore(repo) as store:
            store.apply([DRIVER, *views()])
    run = subprocess.run([sys.executable, "-c", KILLER, str(killed), end.isoformat()],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == -signal.SIGKILL, run.stderr
    with hw.FeatureStore(killed) as store:
        assert store.registry.backend.watermarks("mat") == {}  # nothing was finished
        partial = online_state(store)
        assert 0 < sum(r is not None for r in partial["stats_a"]) < N_DRIVERS
        store.materialize_incremental(end)
        resumed = online_state(store)
    with hw.FeatureStore(clean) as store:
        store.materialize_incremental(end)
        assert online_state(store) == resumed
    assert os.path.exists(killed / ".headwater" / "online.db")
