"""On-demand features over windowed aggregations: the function gets the same aggregate
offline (window scans) and online (tiles), so it gives the same value on both paths."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.repo.loader import load_definitions
from tests.transforms.conftest import T0

AGGREGATED_PY = '''
from datetime import timedelta

import pandas as pd

import headwater as hw

card = hw.Entity("card", join_keys=["card_id"])
card_txn = hw.FeatureView(
    name="card_txn", entities=[card],
    source=hw.FileSource("data/txns.parquet", timestamp_field="ts"),
    aggregations=[
        hw.Aggregation("amount", "mean", timedelta(hours=1), name="amount_mean_1h"),
        hw.Aggregation("amount", "count", timedelta(days=1), name="txn_count_1d"),
    ])


@hw.on_demand_feature_view(
    sources=[card_txn, hw.RequestSource("request", schema=[hw.Field("amount", hw.Float64)])],
    schema=[hw.Field("amount_vs_mean", hw.Float64), hw.Field("share", hw.Float64)])
def amount_ratio(batch):
    return pd.DataFrame({"amount_vs_mean": batch["amount"] / batch["amount_mean_1h"],
                         "share": 1.0 / (batch["txn_count_1d"] + 1)})
'''

EVENTS = [  # card_id, minutes after T0, amount
    (1, 0, 10.0), (1, 30, 30.0), (1, 59, 20.0), (1, 95, 40.0), (2, 10, 5.0), (2, 200, 7.0),
]
T = T0 + timedelta(hours=2)
"""Events with ts < T are delivered; both paths are read at T."""


def brute_force(card: int, amount: float) -> dict[str, Any]:
    """The window rule by hand: mean over [floor_1min(T - 1h), T), count over a day."""
    hour = [a for c, m, a in EVENTS if c == card and T - timedelta(hours=1)
            <= T0 + timedelta(minutes=m) < T]
    day = [a for c, m, a in EVENTS if c == card and T0 + timedelta(minutes=m) < T]
    mean = sum(hour) / len(hour) if hour else None
    return {"amount_vs_mean": None if mean is None else amount / mean,
            "share": 1.0 / (len(day) + 1)}


def events(delivered: bool) -> pa.Table:
    """The events, all of them or only those delivered before ``T`` (ts < T)."""
    kept = [e for e in EVENTS if not delivered or T0 + timedelta(minutes=e[1]) < T]
    return pa.table({
        "card_id": pa.array([e[0] for e in kept], pa.int64()),
        "ts": pa.array([T0 + timedelta(minutes=e[1]) for e in kept], pa.timestamp("us", "UTC")),
        "amount": [e[2] for e in kept],
    })


def make_repo(folder: Path, pushed: bool) -> Path:
    (folder / "data" / "txns").mkdir(parents=True)
    (folder / "headwater.yaml").write_text(f"project: odfv_agg_{folder.parent.name}\n")
    features_py = AGGREGATED_PY
    if pushed:  # events arrive by push: the batch source is the folder they are appended to
        features_py = features_py.replace(
            'source=hw.FileSource("data/txns.parquet", timestamp_field="ts")',
            'source=hw.PushSource("txns", hw.FileSource("data/txns/", timestamp_field="ts"))')
        pq.write_table(events(True).slice(0, 1), folder / "data" / "txns" / "seed.parquet")
    else:
        pq.write_table(events(False), folder / "data" / "txns.parquet")
    (folder / "features.py").write_text(features_py)
    return folder


@pytest.mark.parametrize("delivery", ["materialize", "push"])
def test_on_demand_over_aggregations_is_the_same_offline_and_online(
        tmp_path: Path, delivery: str) -> None:
    repo = make_repo(tmp_path / "repo", pushed=delivery == "push")
    cards, amounts = [1, 2, 3], [60.0, 14.0, 1.0]
    features = ["amount_ratio:amount_vs_mean", "amount_ratio:share"]
    with hw.FeatureStore(repo) as store:
        store.apply(load_definitions(repo))
        if delivery == "push":
            store.materialize(T0 - timedelta(days=1), T0 + timedelta(minutes=1))  # the seed
            store.push("txns", events(True).slice(1), to="both")
        else:
            store.materialize(T0 - timedelta(days=1), T)
        offline = store.get_historical_features(pa.table({
            "card_id": pa.array(cards, pa.int64()),
            "event_timestamp": pa.array([T] * 3, pa.timestamp("us", "UTC")),
            "amount": amounts}), features).to_pandas()
        online = store.get_online_features(
            features, [{"card_id": c, "amount": a} for c, a in zip(cards, amounts, strict=True)],
            now=T).to_dict()
    for i, (card, amount) in enumerate(zip(cards, amounts, strict=True)):
        expected = brute_force(card, amount)
        for name in ("amount_vs_mean", "share"):
            off, on, want = offline[name][i], online[name][i], expected[name]
            if want is None:
                assert on is None and math.isnan(off)
            else:
                assert math.isclose(off, want, rel_tol=1e-12)
                assert math.isclose(on, off, rel_tol=1e-9)
    assert online["amount_vs_mean"][0] == 60.0 / 40.0  # the one event in [1:00, 2:00)
