"""Online reads: statuses, several entities per row, typed output, clear errors, plan refresh."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CARRIER = hw.Entity("carrier", join_keys=["carrier"])
AIRPORT = hw.Entity("airport", join_keys=["origin"])


@pytest.fixture
def store(tmp_path: Path) -> hw.FeatureStore:
    (tmp_path / "headwater.yaml").write_text("project: flights\n")
    stamp = pa.timestamp("us", "UTC")
    pq.write_table(pa.table({
        "carrier": ["UA", "UA", "DL"],
        "ts": pa.array([T0, T0 + timedelta(hours=5), T0], stamp),
        "delay": [1.5, 2.5, 9.0],
        "seen": pa.array([T0, T0 + timedelta(hours=1), T0], stamp),
    }), tmp_path / "carriers.parquet")
    pq.write_table(pa.table({
        "origin": ["JFK", "SFO"],
        "ts": pa.array([T0, T0], stamp),
        "gates": pa.array([12, 40], pa.int32()),
        "tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
    }), tmp_path / "airports.parquet")
    carriers = hw.FeatureView("carrier_stats", entities=[CARRIER],
                              source=hw.FileSource("carriers.parquet", "ts"),
                              ttl=timedelta(hours=2))
    airports = hw.FeatureView("airport_stats", entities=[AIRPORT],
                              source=hw.FileSource("airports.parquet", "ts"))
    fs = hw.FeatureStore(tmp_path)
    fs.apply([CARRIER, AIRPORT, carriers, airports])
    fs.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1))
    return fs


def test_each_view_reads_its_own_keys_with_status_and_event_time(store: hw.FeatureStore) -> None:
    rows = [{"origin": "JFK", "carrier": "UA"}, {"origin": "LAX", "carrier": "DL"},
            {"origin": "SFO", "carrier": "AA"}]
    now = T0 + timedelta(hours=6)
    response = store.get_online_features(
        ["carrier_stats:delay", "carrier_stats:seen", "airport_stats:gates",
         "airport_stats:tags"], rows, now=now)
    out = response.to_dict()
    assert list(out) == ["carrier", "origin", "delay", "seen", "gates", "tags"]
    assert out["carrier"] == ["UA", "DL", "AA"]
    assert out["delay"] == [2.5, None, None]  # DL's row is older than the 2 h ttl
    assert out["seen"] == [T0 + timedelta(hours=1), None, None]
    assert out["gates"] == [12, None, 40]
    assert out["tags"] == [["a", "b"], None, []]
    carrier = response.metadata["carrier_stats"]
    assert carrier.statuses == ["PRESENT", "EXPIRED", "MISSING"]
    assert carrier.event_timestamps == [T0 + timedelta(hours=5), T0, None]
    assert response.metadata["airport_stats"].statuses == ["PRESENT", "MISSING", "PRESENT"]
    table = response.to_arrow()
    assert table.schema.field("gates").type == pa.int32()
    assert table.schema.field("seen").type == pa.timestamp("us", "UTC")
    assert table.schema.field("tags").type == pa.list_(pa.string())


def test_values_delivered_after_now_are_not_served(store: hw.FeatureStore) -> None:
    # UA's latest delivered row is at +5h; at +3h the point-in-time value is the +0h row,
    # which the online store no longer holds, so the answer is MISSING, never the future
    response = store.get_online_features(["carrier_stats:delay"], [{"carrier": "UA"}],
                                         now=T0 + timedelta(hours=3))
    assert response.metadata["carrier_stats"].statuses == ["MISSING"]
    assert response.to_dict()["delay"] == [None]


def test_integer_keys_of_any_integer_type_and_range(tmp_path: Path) -> None:
    import numpy as np

    (tmp_path / "headwater.yaml").write_text("project: ints\n")
    pq.write_table(pa.table({"driver_id": pa.array([1, 2**62], pa.int64()),
                             "ts": pa.array([T0, T0], pa.timestamp("us", "UTC")),
                             "x": [1.0, 2.0]}), tmp_path / "d.parquet")
    driver = hw.Entity("driver", join_keys=["driver_id"])
    view = hw.FeatureView("d", entities=[driver], source=hw.FileSource("d.parquet", "ts"))
    with hw.FeatureStore(tmp_path) as fs:
        fs.apply([driver, view])
        fs.materialize(T0, T0)
        rows = [{"driver_id": np.int64(1)}, {"driver_id": 2**62}, {"driver_id": np.int32(3)}]
        assert fs.get_online_features(["d:x"], rows, now=T0).to_dict()["x"] == [1.0, 2.0, None]
        with pytest.raises(hw.DataError, match="64-bit integer"):
            fs.get_online_features(["d:x"], [{"driver_id": 2**70}], now=T0)


def test_ttl_edge_is_inclusive_like_the_offline_join(store: hw.FeatureStore) -> None:
    at_edge = T0 + timedelta(hours=7)  # UA's row at +5h is exactly ttl (2h) old
    response = store.get_online_features(["carrier_stats:delay"], [{"carrier": "UA"}],
                                         now=at_edge)
    assert response.metadata["carrier_stats"].statuses == ["PRESENT"]
    later = at_edge + timedelta(microseconds=1)
    response = store.get_online_features(["carrier_stats:delay"], [{"carrier": "UA"}],
                                         now=later)
    assert response.metadata["carrier_stats"].statuses == ["EXPIRED"]


def test_feature_service_and_full_names(store: hw.FeatureStore) -> None:
    service = hw.FeatureService("svc", features=["airport_stats:gates", "carrier_stats:*"])
    out = store.get_online_features(service, [{"origin": "JFK", "carrier": "UA"}],
                                    full_feature_names=True,
                                    now=T0 + timedelta(hours=6)).to_dict()
    assert list(out) == ["origin", "carrier", "airport_stats__gates", "carrier_stats__delay",
                         "carrier_stats__seen"]
    assert out["carrier_stats__delay"] == [2.5]  # the latest row delivered


def test_bad_requests_are_clear_errors(store: hw.FeatureStore) -> None:
    with pytest.raises(hw.NotFoundError, match="no feature_view named 'nope'"):
        store.get_online_features(["nope:x"], [{"carrier": "UA"}])
    with pytest.raises(hw.NotFoundError, match=r"has no feature\(s\) \['speed'\]"):
        store.get_online_features(["carrier_stats:speed"], [{"carrier": "UA"}])
    with pytest.raises(hw.DataError, match="entity row 1 has no 'carrier'"):
        store.get_online_features(["carrier_stats:delay"], [{"carrier": "UA"}, {"x": 1}])
    with pytest.raises(hw.DataError, match=r"keys are string values\. Fix: pass it as str"):
        store.get_online_features(["carrier_stats:delay"], [{"carrier": 1.5}])
    with pytest.raises(hw.DataError, match="'carrier_stats' is 7, but the view's keys are str"):
        store.get_online_features(["carrier_stats:delay"], [{"carrier": 7}])
    with pytest.raises(hw.DataError, match="entity_rows must be a list of dicts"):
        store.get_online_features(["carrier_stats:delay"], {"carrier": "UA"})  # type: ignore[arg-type]
    with pytest.raises(hw.DataError, match="now must be a datetime"):
        store.get_online_features(["carrier_stats:delay"], [{"carrier": "UA"}],
                                  now="2024-01-01")  # type: ignore[arg-type]
    with pytest.raises(hw.DefinitionError, match="get_online_features: field 'features'"):
        store.get_online_features(["carrier_stats"], [{"carrier": "UA"}])


APPLY_ELSEWHERE = textwrap.dedent("""
    import sys
    from datetime import timedelta
    import headwater as hw
    carrier = hw.Entity("carrier", join_keys=["carrier"])
    view = hw.FeatureView("carrier_stats", entities=[carrier],
                          source=hw.FileSource("carriers.parquet", "ts"),
                          schema=[hw.Field("delay", hw.Float64)], ttl=timedelta(hours=2))
    with hw.FeatureStore(sys.argv[1]) as store:
        store.apply([carrier, view])
""")


def test_compiled_plans_follow_a_change_made_by_another_process(store: hw.FeatureStore) -> None:
    rows = [{"carrier": "UA"}]
    assert "seen" in store.get_online_features(["carrier_stats:*"], rows, now=T0).to_dict()
    subprocess.run([sys.executable, "-c", APPLY_ELSEWHERE, str(store.repo_path)], check=True,
                   timeout=120)
    assert store._plans is not None
    store._plans.check()  # what the background watcher does every PLAN_REFRESH_SECONDS
    response = store.get_online_features(["carrier_stats:*"], rows, now=T0)
    assert list(response.to_dict()) == ["carrier", "delay"]
    # the view's schema changed, so its old records are not served under the new schema
    assert response.metadata["carrier_stats"].statuses == ["MISSING"]
