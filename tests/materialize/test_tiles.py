"""Materializing aggregated views: tile records rebuilt from offline events, served at end
equal to the offline values; reruns do not double count; apply_events' errors."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.errors import DataError, DefinitionError
from headwater.materialize.tiles import apply_events, materialize_tiles
from tests.online.conftest import delete_project_keys

START = datetime(2024, 1, 1, tzinfo=UTC)
END = START + timedelta(hours=30)
CARD = hw.Entity("card", join_keys=["card_id"])
N_CARDS, N_EVENTS = 60, 4_000
UTC_US = pa.timestamp("us", "UTC")
AGGREGATIONS = [
    hw.Aggregation("amount", "sum", timedelta(hours=1), name="amount_sum_1h"),
    hw.Aggregation("amount", "mean", timedelta(hours=6), name="amount_mean_6h"),
    hw.Aggregation("amount", "count", timedelta(days=7), timedelta(hours=1), name="n_7d"),
    hw.Aggregation("amount", "stddev", timedelta(minutes=30), name="amount_std_30m"),
    hw.Aggregation("merchant", "last", timedelta(days=1), name="last_merchant"),
    hw.Aggregation("merchant", "count_distinct", timedelta(days=2), name="merchants_2d"),
]
NAMES = [f"card_txn:{a.name}" for a in AGGREGATIONS]


def events(seed: int = 5) -> pa.Table:
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, 30 * 3600, N_EVENTS)
    amounts = rng.integers(-400, 4000, N_EVENTS) / 4
    return pa.table({
        "card_id": pa.array(rng.integers(1, N_CARDS + 1, N_EVENTS), pa.int64()),
        "ts": pa.array([START + timedelta(seconds=int(s)) for s in seconds], UTC_US),
        "amount": pa.array(np.where(rng.random(N_EVENTS) < 0.1, np.nan, amounts),
                           from_pandas=True),
        "merchant": pa.array([f"m{int(m)}" for m in rng.integers(0, 40, N_EVENTS)]),
    })


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[hw.FeatureStore]:
    project, online = "tiles", ""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        project = f"tiles_{uuid.uuid4().hex[:10]}"
        online = f"online: {{type: redis, url: '{url}'}}\n"
    (tmp_path / "headwater.yaml").write_text(f"project: {project}\n{online}")
    pq.write_table(events(), tmp_path / "txns.parquet")
    view = hw.FeatureView("card_txn", entities=[CARD],
                          source=hw.FileSource("txns.parquet", timestamp_field="ts"),
                          aggregations=AGGREGATIONS)
    with hw.FeatureStore(tmp_path) as feature_store:
        feature_store.apply([CARD, view])
        try:
            yield feature_store
        finally:
            if request.param == "redis":
                delete_project_keys(url, project)


def offline_at(store: hw.FeatureStore, cards: list[int], t: datetime) -> dict[str, list[object]]:
    entity = pa.table({"card_id": pa.array(cards, pa.int64()),
                       "event_timestamp": pa.array([t] * len(cards), UTC_US)})
    table = store.get_historical_features(entity, NAMES).to_arrow()
    return {a.name: table.column(a.name).to_pylist() for a in AGGREGATIONS}


def assert_same(online: dict[str, list[object]], offline: dict[str, list[object]]) -> None:
    for name, expected in offline.items():
        for got, want in zip(online[name], expected, strict=True):
            if isinstance(want, float) or isinstance(got, float):
                assert got is not None and want is not None, (name, got, want)
                assert math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-9), (
                    name, got, want)
            else:
                assert got == want, (name, got, want)


def test_materialized_tiles_serve_the_offline_values_at_end(store: hw.FeatureStore) -> None:
    progress: list[int] = []
    (result,) = store.materialize(START, END, progress=lambda view, n: progress.append(n))
    assert result.view == "card_txn" and result.rows == N_CARDS == sum(progress)
    cards = [*range(1, N_CARDS + 1), N_CARDS + 1]
    response = store.get_online_features(NAMES, [{"card_id": c} for c in cards], now=END)
    assert_same(response.to_dict(), offline_at(store, cards, END))
    statuses = response.metadata["card_txn"].statuses
    assert statuses == ["PRESENT"] * N_CARDS + ["MISSING"]
    # a rerun rebuilds the same records: nothing counted twice
    store.materialize_incremental(END)
    later = END + timedelta(minutes=20)
    again = store.get_online_features(NAMES, [{"card_id": c} for c in cards], now=later)
    assert_same(again.to_dict(), offline_at(store, cards, later))


def test_tiles_streamed_after_end_survive_a_materialization(store: hw.FeatureStore) -> None:
    view = store.get_feature_view("card_txn")
    generation = store.record_generation("card_txn")
    after = END + timedelta(minutes=10)
    streamed = pa.table({
        "card_id": pa.array([1, 1], pa.int64()),
        "__hw_ts": pa.array([after, after], UTC_US),
        "__hw_created": pa.nulls(2, UTC_US),
        "__hw_seq": pa.array([10**9, 10**9 + 1], pa.int64()),
        "amount": pa.array([1000.0, 3000.0]),
        "merchant": pa.array(["new", "newer"]),
    })
    apply_events(store.online, view, generation, streamed)
    materialize_tiles(store.offline, store.online, view, generation, END)
    read_at = after + timedelta(seconds=1)
    got = store.get_online_features(["card_txn:amount_sum_1h", "card_txn:last_merchant"],
                                    [{"card_id": 1}], now=read_at).to_dict()
    offline = offline_at(store, [1], read_at)  # the offline source lacks the streamed two
    assert got["last_merchant"] == ["newer"]
    assert got["amount_sum_1h"][0] == pytest.approx(offline["amount_sum_1h"][0] + 4000.0)


def test_a_record_of_a_newer_definition_is_left_alone(store: hw.FeatureStore) -> None:
    view = store.get_feature_view("card_txn")
    generation = store.record_generation("card_txn")
    materialize_tiles(store.offline, store.online, view, generation + 1, END)
    from headwater.online.base import ViewKeys
    from headwater.online.encoding import encode_key

    key = encode_key(["card_id"], [1])
    (before,) = store.online.read([ViewKeys("card_txn", [key])])
    result = materialize_tiles(store.offline, store.online, view, generation, END)
    assert result.rows == 0
    assert store.online.read([ViewKeys("card_txn", [key])]) == [before]
    # served under the current generation: a record of another one is MISSING
    got = store.get_online_features(["card_txn:n_7d"], [{"card_id": 1}], now=END)
    assert got.metadata["card_txn"].statuses == ["MISSING"]


def test_apply_events_refuses_what_it_cannot_apply_exactly_once(
        store: hw.FeatureStore) -> None:
    view = store.get_feature_view("card_txn")
    table = pa.table({
        "card_id": pa.array([1], pa.int64()), "__hw_ts": pa.array([END], UTC_US),
        "__hw_created": pa.nulls(1, UTC_US), "__hw_seq": pa.array([1], pa.int64()),
        "amount": pa.array([1.0]), "merchant": pa.array(["m"]),
    })
    with pytest.raises(DataError, match="2 ids for 1 events"):
        apply_events(store.online, view, 1, table, scope="s", ids=["a", "b"])
    with pytest.raises(DataError, match="without a scope"):
        apply_events(store.online, view, 1, table, ids=["a"])
    with pytest.raises(DataError, match="no column 'merchant'"):
        apply_events(store.online, view, 1, table.drop_columns(["merchant"]))
    plain = hw.FeatureView("plain", entities=[CARD],
                           source=hw.FileSource("txns.parquet", timestamp_field="ts"),
                           schema=[hw.Field("amount", hw.Float64)])
    with pytest.raises(DefinitionError, match="needs a view with aggregations"):
        apply_events(store.online, plain, 1, table)
    assert store.online.markers_present("s", ["a", "b"]) == set()
    result = apply_events(store.online, view, 1, table, scope="s", ids=["a"])
    assert (result.applied, result.duplicates, result.records) == (1, 0, 1)
    again = apply_events(store.online, view, 1, table, scope="s", ids=["a"])
    assert (again.applied, again.duplicates, again.records) == (0, 1, 0)
