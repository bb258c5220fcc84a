"""A FeatureStore whose online store is a Redis Cluster serves what one on a single Redis
serves: a plain view and an aggregated view, materialized, then fed by pushed events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import headwater as hw
from headwater.online.redis_cluster import RedisClusterOnlineStore
from headwater.testing.redis_cluster import LocalRedisCluster
from tests.streaming.stream_repo import (
    close_enough,
    events,
    expected,
    make_repo,
    online_values,
)

DRIVERS = [1001, 1002, 1003, 1004, 1005]


def serve(repo: Path, history: pa.Table, pushed: pa.Table, materialized_to: datetime,
          at: datetime) -> tuple[list[dict[str, Any]], dict[str, list[Any]], Any]:
    """Materialize ``history``, push ``pushed`` online, and read both views at ``at``."""
    pq.write_table(history, repo / "data" / "trips" / "part-1.parquet")
    with hw.FeatureStore(repo) as store:
        store.materialize(materialized_to - timedelta(days=1), materialized_to)
        store.push("trips", pushed, to="online")
        aggregated = online_values(store, at, DRIVERS)
        latest = store.get_online_features(
            ["driver_last_trip:fare", "driver_last_trip:rating"],
            [{"driver_id": d} for d in DRIVERS], now=at).to_dict()
        return aggregated, latest, store.online


def test_online_features_on_a_cluster_equal_those_on_a_single_redis(
        tmp_path: Path, redis_url: str, redis_project: str, redis_cluster: LocalRedisCluster,
        cluster_project: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    materialized_to = now - timedelta(minutes=40)
    history = events(600, end=materialized_to - timedelta(seconds=1), seed=3)
    pushed = events(300, end=now - timedelta(minutes=1), seed=4)
    at = now
    single = make_repo(tmp_path / "single", "trips",
                       online=f"online: {{type: redis, url: '{redis_url}'}}\n",
                       project=redis_project)
    cluster = make_repo(tmp_path / "cluster", "trips",
                        online=f"online: {{type: redis, url: '{redis_cluster.urls[1]}', "
                               "cluster: true}\n", project=cluster_project)
    want_aggregated, want_latest, _ = serve(single, history, pushed, materialized_to, at)
    got_aggregated, got_latest, online = serve(cluster, history, pushed, materialized_to, at)
    assert isinstance(online, RedisClusterOnlineStore)
    assert got_latest == want_latest
    assert None not in got_latest["fare"]
    everything = pa.concat_tables([history, pushed])
    for driver, got, want in zip(DRIVERS, got_aggregated, want_aggregated, strict=True):
        assert got == want
        assert close_enough(got, expected(everything, at, driver))
        assert got["fare_count"] > 0
