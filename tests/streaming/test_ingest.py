"""store.push to a push or stream source: events validated once for every view of the
source, appended offline by date, applied to every view online."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import headwater as hw
from tests.streaming.stream_repo import (
    DRIVER,
    close_enough,
    definitions,
    events,
    expected,
    make_repo,
    offline_rows,
    online_values,
)

DRIVERS = [1001, 1002, 1003]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[hw.FeatureStore]:
    with hw.FeatureStore(make_repo(tmp_path / "repo", "trips")) as fs:
        yield fs


def test_push_to_a_source_feeds_every_view_and_the_dated_offline_copy(
        store: hw.FeatureStore) -> None:
    pushed = events(900, drivers=3)
    result = store.push("trips", pushed, to="both")
    assert (result.view, result.rows) == ("trips", 900)
    assert result.offline_files and all(
        p.parent.name.startswith("date=") for p in result.offline_files)
    at = pushed.column("ts")[-1].as_py() + timedelta(seconds=1)
    for driver, got in zip(DRIVERS, online_values(store, at, DRIVERS), strict=True):
        assert close_enough(got, expected(pushed, at, driver))
    assert offline_rows(store.repo_path).num_rows == 900
    # training reads the partitioned files like the source's other files
    frame = store.get_historical_features(
        pa.table({"driver_id": DRIVERS, "event_timestamp": pa.array(
            [at] * 3, pa.timestamp("us", "UTC"))}), ["driver_last_trip:fare"]).to_arrow()
    latest = store.get_online_features(["driver_last_trip:fare"],
                                       [{"driver_id": d} for d in DRIVERS], now=at)
    assert frame.column("fare").to_pylist() == latest.to_dict()["fare"]
    assert None not in frame.column("fare").to_pylist()


def test_online_and_offline_only_pushes(store: hw.FeatureStore) -> None:
    pushed = events(100, drivers=3, seed=7)
    online = store.push("trips", pushed, to="online")
    assert online.offline_files == () and offline_rows(store.repo_path).num_rows == 0
    offline = store.push("trips", pushed, to="offline")
    assert offline.online_stored == 0 and offline_rows(store.repo_path).num_rows == 100
    at = pushed.column("ts")[-1].as_py() + timedelta(seconds=1)
    got = online_values(store, at, DRIVERS)  # only the online push counted
    assert [g["fare_count"] for g in got] == [expected(pushed, at, d)["fare_count"]
                                              for d in DRIVERS]


def test_bad_events_are_refused_before_any_write(store: hw.FeatureStore) -> None:
    rows = events(3, drivers=1).to_pylist()
    rows[1]["rating"] = None
    rows[2]["fare"] = "cheap"
    with pytest.raises(hw.DataError, match=r"push to StreamSource 'trips': column 'fare'"):
        store.push("trips", rows, to="both")
    assert offline_rows(store.repo_path).num_rows == 0
    with pytest.raises(hw.DataError, match=r"missing column\(s\) \['rating'\]"):
        store.push("trips", [{"driver_id": 1, "ts": rows[0]["ts"], "fare": 1.0}])


def test_a_view_sharing_the_name_of_another_views_source_is_ambiguous(
        store: hw.FeatureStore) -> None:
    twin = hw.FeatureView("trips", entities=[DRIVER], schema=[hw.Field("fare", hw.Float64)],
                          source=hw.FileSource("data/trips/", timestamp_field="ts"))
    store.apply([*definitions("trips"), twin])
    with pytest.raises(hw.DefinitionError, match="ambiguous"):
        store.push("trips", events(1, drivers=1))


def test_an_aggregated_view_name_takes_events_for_that_view(store: hw.FeatureStore) -> None:
    pushed = events(50, drivers=3, seed=9).drop_columns(["rating"])
    store.push("driver_trips", pushed, to="online")  # only the view's columns, one view
    at = pushed.column("ts")[-1].as_py() + timedelta(seconds=1)
    assert close_enough(online_values(store, at, [1001])[0], expected(pushed, at, 1001))
    latest = store.get_online_features(["driver_last_trip:fare"], [{"driver_id": 1001}])
    assert latest.to_dict()["fare"] == [None]  # the other view of the source is untouched
