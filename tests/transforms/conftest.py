"""A repo with latest-value views and on-demand views over them, defined in a repo file so
that the functions have source text and a server process can load them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.repo.loader import load_definitions

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T = T0 + timedelta(hours=5)
"""Materialized up to T; online reads at T equal offline rows at T."""

FEATURES_PY = '''
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import headwater as hw

card = hw.Entity("card", join_keys=["card_id"])
merchant = hw.Entity("merchant", join_keys=["merchant_id"])
card_stats = hw.FeatureView(
    name="card_stats", entities=[card],
    source=hw.FileSource("data/card_stats.parquet", timestamp_field="ts"),
    schema=[hw.Field("amount_mean", hw.Float64), hw.Field("txn_count", hw.Int64)])
merchant_stats = hw.FeatureView(
    name="merchant_stats", entities=[merchant],
    source=hw.FileSource("data/merchant_stats.parquet", timestamp_field="ts"),
    schema=[hw.Field("risk", hw.Float64)])
request = hw.RequestSource("request", schema=[hw.Field("amount", hw.Float64)])


@hw.on_demand_feature_view(
    sources=[card_stats, request],
    schema=[hw.Field("amount_vs_mean", hw.Float64), hw.Field("is_large", hw.Bool)])
def amount_ratio(batch):
    """How this amount compares with the card's mean."""
    return pd.DataFrame({"amount_vs_mean": batch["amount"] / batch["amount_mean"],
                         "is_large": batch["amount"] > 2 * batch["amount_mean"]})


@hw.on_demand_feature_view(
    sources=[card_stats[["txn_count"]], merchant_stats, request],
    schema=[hw.Field("risk_score", hw.Float64), hw.Field("count_plus_one", hw.Int64)],
    mode="arrow")
def risk(batch):
    return pa.table({"risk_score": pc.multiply(batch["risk"], batch["amount"]),
                     "count_plus_one": pc.add(batch["txn_count"], 1)})


fraud_model = hw.FeatureService(
    "fraud_model", features=[amount_ratio, "risk:risk_score", "card_stats:txn_count"])
'''

CARD_ROWS = [  # card_id, hours after T0, amount_mean, txn_count
    (1, 0, 10.0, 1), (1, 2, 20.0, 2), (1, 7, 99.0, 9),  # the last one is after T
    (2, 1, 4.0, 5), (3, 3, 0.0, 0),
]
MERCHANT_ROWS = [(10, 0, 0.5), (10, 4, 0.25), (11, 1, 2.0)]


def make_repo(folder: Path, project: str, features_py: str = FEATURES_PY) -> Path:
    """A repo folder with the views' data and ``features.py``."""
    (folder / "data").mkdir(parents=True)
    (folder / "headwater.yaml").write_text(f"project: {project}\n")
    (folder / "features.py").write_text(features_py)
    stamp = pa.timestamp("us", "UTC")
    pq.write_table(pa.table({
        "card_id": pa.array([r[0] for r in CARD_ROWS], pa.int64()),
        "ts": pa.array([T0 + timedelta(hours=r[1]) for r in CARD_ROWS], stamp),
        "amount_mean": [r[2] for r in CARD_ROWS],
        "txn_count": pa.array([r[3] for r in CARD_ROWS], pa.int64()),
    }), folder / "data" / "card_stats.parquet")
    pq.write_table(pa.table({
        "merchant_id": pa.array([r[0] for r in MERCHANT_ROWS], pa.int64()),
        "ts": pa.array([T0 + timedelta(hours=r[1]) for r in MERCHANT_ROWS], stamp),
        "risk": [r[2] for r in MERCHANT_ROWS],
    }), folder / "data" / "merchant_stats.parquet")
    return folder


def apply_repo(repo: Path) -> None:
    """Apply the repo's definitions and materialize up to ``T``."""
    with hw.FeatureStore(repo) as store:
        store.apply(load_definitions(repo), prune=True)
        store.materialize(T0 - timedelta(days=1), T)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The repo, applied and materialized up to ``T``."""
    folder = make_repo(tmp_path / "repo", f"odfv_{tmp_path.name}")
    apply_repo(folder)
    return folder


@pytest.fixture
def store(repo: Path) -> hw.FeatureStore:
    with hw.FeatureStore(repo) as opened:
        yield opened  # type: ignore[misc]
