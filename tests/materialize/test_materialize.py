"""Materialization: latest row per entity online, watermarks, idempotent reruns, kills."""

from __future__ import annotations

import dataclasses
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


def test_the_watermark_only_advances_over_contiguous_ranges(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "")
    hour = timedelta(hours=1)
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, *views()])
        store.materialize(START, START + 2 * hour, views=["stats_a"])
        store.materialize(START + 8 * hour, START + 10 * hour, views=["stats_a"])  # a gap
        marks = store.registry.backend.watermarks("mat")
        assert marks["stats_a"][1] == START + 2 * hour
        store.materialize(START, START + hour, views=["stats_a"])  # an older backfill
        assert store.registry.backend.watermarks("mat")["stats_a"][1] == START + 2 * hour
        # incremental fills the gap instead of skipping it
        results = store.materialize_incremental(START + 12 * hour, views=["stats_a"])
        assert results[0].start == START + 2 * hour
        store.materialize(START + 12 * hour, START + 14 * hour, views=["stats_a"])  # adjoining
        assert store.registry.backend.watermarks("mat")["stats_a"][1] == START + 14 * hour


def test_a_view_with_a_new_source_serves_nothing_stale(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "")
    later = driver_stats(N_DRIVERS, N_HOURS, start=START - timedelta(days=30), seed=9)
    pq.write_table(later, repo / "data" / "older.parquet")
    end = START + timedelta(hours=10)
    with hw.FeatureStore(repo) as store:
        first = views()[0]
        store.apply([DRIVER, first])
        store.materialize(START, end, views=["stats_a"])
        moved = hw.FeatureView(
            "stats_a", entities=[DRIVER],
            source=hw.FileSource("data/older.parquet", "event_timestamp", "created"),
            schema=list(first.features), ttl=timedelta(days=60))
        store.apply([moved])
        response = store.get_online_features(["stats_a:trips"], [{"driver_id": 1001}], now=end)
        assert response.metadata["stats_a"].statuses == ["MISSING"]  # not the old source's row
        store.materialize(START - timedelta(days=30), end, views=["stats_a"])
        online = store.get_online_features(["stats_a:trips"], [{"driver_id": 1001}], now=end)
        entity = pa.table({"driver_id": pa.array([1001], pa.int64()),
                           "event_timestamp": pa.array([end], pa.timestamp("us", "UTC"))})
        offline = store.get_historical_features(entity, ["stats_a:trips"]).to_arrow()
        assert online.to_dict()["trips"] == offline.column("trips").to_pylist()
        assert online.metadata["stats_a"].statuses == ["PRESENT"]


def test_every_dtype_goes_through_materialization_and_online_reads(tmp_path: Path) -> None:
    (tmp_path / "headwater.yaml").write_text("project: dtypes\n")
    stamp = pa.timestamp("us", "UTC")
    table = pa.table({
        "driver_id": pa.array([1, 2], pa.int64()),
        "ts": pa.array([START, START], stamp),
        "f64": pa.array([1.5, None], pa.float64()),
        "f32": pa.array([0.25, 2.0], pa.float32()),
        "i64": pa.array([2**60, -1], pa.int64()),
        "i32": pa.array([7, None], pa.int32()),
        "s": pa.array(["é, ☃", ""], pa.string()),
        "b": pa.array([True, False]),
        "t": pa.array([START - timedelta(days=1), None], stamp),
        "af": pa.array([[1.0, 2.0], []], pa.list_(pa.float64())),
        "at": pa.array([[START, START + timedelta(seconds=1)], None], pa.list_(stamp)),
    })
    pq.write_table(table, tmp_path / "d.parquet")
    view = hw.FeatureView("d", entities=[DRIVER], source=hw.FileSource("d.parquet", "ts"))
    with hw.FeatureStore(tmp_path) as store:
        store.apply([DRIVER, view])
        assert [f.dtype for f in store.get_feature_view("d").features] == [
            hw.Float64, hw.Float32, hw.Int64, hw.Int32, hw.String, hw.Bool, hw.Timestamp,
            hw.Array(hw.Float64), hw.Array(hw.Timestamp)]
        store.materialize(START, START)
        response = store.get_online_features(["d:*"], [{"driver_id": 1}, {"driver_id": 2}],
                                             now=START)
        entity = pa.table({"driver_id": pa.array([1, 2], pa.int64()),
                           "event_timestamp": pa.array([START, START], stamp)})
        offline = store.get_historical_features(entity, ["d:*"]).to_arrow()
        online = response.to_arrow()
        for name in table.column_names[2:]:
            assert online.column(name).to_pylist() == offline.column(name).to_pylist(), name
            assert online.schema.field(name).type == offline.schema.field(name).type, name
        assert response.to_dict()["at"][0] == [START, START + timedelta(seconds=1)]


def test_a_writer_still_on_an_old_definition_never_hides_the_new_records(
        tmp_path: Path) -> None:
    from headwater.materialize.job import materialize_view

    repo = make_repo(tmp_path / "repo", "")
    pq.write_table(driver_stats(N_DRIVERS, N_HOURS, start=START, seed=11),
                   repo / "data" / "other.parquet")
    end = START + timedelta(hours=10)
    with hw.FeatureStore(repo) as store:
        first = views()[0]
        store.apply([DRIVER, first])
        old_generation = store.record_generation("stats_a")
        old_view = store.get_feature_view("stats_a")
        moved = dataclasses.replace(
            first, source=hw.FileSource("data/other.parquet", "event_timestamp", "created"))
        store.apply([moved])
        assert store.record_generation("stats_a") == old_generation + 1
        store.materialize(START, end, views=["stats_a"])
        expected = store.get_online_features(["stats_a:trips"], [{"driver_id": 1001}], now=end)
        # a job that started before the apply finishes now, with the old definition
        result = materialize_view(store.offline, store.online, old_view, START, end,
                                  generation=old_generation)
        assert result.rows == 0
        again = store.get_online_features(["stats_a:trips"], [{"driver_id": 1001}], now=end)
        assert again.to_dict() == expected.to_dict()
        assert again.metadata["stats_a"].statuses == ["PRESENT"]


def test_a_description_change_keeps_the_online_records(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "")
    end = START + timedelta(hours=10)
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, views()[0]])
        store.materialize(START, end, views=["stats_a"])
        store.apply([dataclasses.replace(views()[0], description="now documented")])
        response = store.get_online_features(["stats_a:trips"], [{"driver_id": 1001}], now=end)
        assert response.metadata["stats_a"].statuses == ["PRESENT"]
