"""Aggregated views over a lifecycle: a changed definition, and materialize after streaming."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

import headwater as hw
from tests.streaming.stream_repo import WINDOW, definitions, make_repo

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def event(ts: datetime, fare: float) -> dict[str, Any]:
    return {"driver_id": 1, "ts": ts, "fare": fare, "rating": 5}


def online(store: hw.FeatureStore, features: list[str], at: datetime) -> Any:
    return store.get_online_features([f"driver_trips:{f}" for f in features],
                                     [{"driver_id": 1}], now=at)


def offline(store: hw.FeatureStore, features: list[str], at: datetime) -> dict[str, list[Any]]:
    frame = store.get_historical_features(
        pd.DataFrame({"driver_id": [1], "event_timestamp": [at]}),
        [f"driver_trips:{f}" for f in features]).to_pandas()
    return {f: frame[f].tolist() for f in features}


def test_a_changed_aggregated_view_is_missing_online_until_materialized(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "t")
    at = T0 + timedelta(minutes=10)
    with hw.FeatureStore(repo) as store:
        store.push("trips", [event(T0 + timedelta(minutes=i), 1.0) for i in range(5)])
        assert online(store, ["fare_count"], at).to_dict()["fare_count"] == [5]
        entity, view, latest = definitions("t")
        changed = hw.FeatureView(view.name, entities=view.entities, source=view.source,
                                 aggregations=[*view.aggregations,
                                               hw.Aggregation("fare", "min", WINDOW,
                                                              name="fare_min")])
        store.apply([entity, changed, latest])
        before = online(store, ["fare_count", "fare_min"], at)
        assert before.metadata["driver_trips"].statuses == ["MISSING"]
        # a push under the new definition does not build a record from its events alone
        store.push("trips", [event(T0 + timedelta(minutes=6), 0.5)])
        after_push = online(store, ["fare_count", "fare_min"], at)
        assert after_push.metadata["driver_trips"].statuses == ["MISSING"]
        store.materialize(T0 - timedelta(days=1), at)
        served = online(store, ["fare_count", "fare_min"], at)
        assert served.metadata["driver_trips"].statuses == ["PRESENT"]
        assert {k: served.to_dict()[k] for k in ("fare_count", "fare_min")} == offline(
            store, ["fare_count", "fare_min"], at) == {"fare_count": [6], "fare_min": [0.5]}


def test_materialize_with_an_end_inside_a_tile_keeps_events_streamed_into_it(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "t")
    at = T0 + timedelta(minutes=2)
    with hw.FeatureStore(repo) as store:
        store.push("trips", [event(T0 + timedelta(seconds=10), 1.0),
                             event(T0 + timedelta(seconds=50), 2.0)])
        store.materialize(T0 - timedelta(days=1), T0 + timedelta(seconds=30))
        served = online(store, ["fare_count", "fare_sum"], at).to_dict()
        assert {k: served[k] for k in ("fare_count", "fare_sum")} == offline(
            store, ["fare_count", "fare_sum"], at) == {"fare_count": [2], "fare_sum": [3.0]}
