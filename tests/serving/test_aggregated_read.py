"""Online reads of aggregated views: finalized at now, read with latest-value views in one
round trip, with the record's latest event as event time and PRESENT/MISSING statuses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import headwater as hw
from headwater.online.base import OnlineStore, ViewKeys

T0 = datetime(2024, 1, 1, tzinfo=UTC)
UTC_US = pa.timestamp("us", "UTC")
CARD = hw.Entity("card", join_keys=["card_id"])


class CountingReads:
    """The real online store, counting its read round trips."""

    def __init__(self, store: OnlineStore) -> None:
        self.store = store
        self.reads: list[list[str]] = []

    def read(self, requests: Sequence[ViewKeys]) -> list[list[bytes | None]]:
        self.reads.append([r.view for r in requests])
        return self.store.read(requests)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def make_repo(folder: Path) -> list[hw.FeatureView]:
    (folder / "headwater.yaml").write_text("project: agg_read\n")
    minutes = [0, 5, 30, 61, 62]
    pq.write_table(pa.table({
        "card_id": pa.array([1, 1, 1, 1, 2], pa.int64()),
        "ts": pa.array([T0 + timedelta(minutes=m) for m in minutes], UTC_US),
        "amount": pa.array([10.0, 20.0, None, 40.0, 5.0]),
    }), folder / "txns.parquet")
    pq.write_table(pa.table({
        "card_id": pa.array([1, 3], pa.int64()),
        "ts": pa.array([T0, T0 + timedelta(minutes=1)], UTC_US),
        "limit": pa.array([500, 900], pa.int64()),
    }), folder / "profile.parquet")
    txn = hw.FeatureView(
        "card_txn", entities=[CARD], source=hw.FileSource("txns.parquet", "ts"),
        aggregations=[hw.Aggregation("amount", "sum", timedelta(hours=1)),
                      hw.Aggregation("amount", "count", timedelta(minutes=10)),
                      hw.Aggregation("amount", "mean", timedelta(hours=2))])
    profile = hw.FeatureView("profile", entities=[CARD],
                             source=hw.FileSource("profile.parquet", "ts"))
    return [txn, profile]


def test_aggregated_and_latest_views_in_one_round_trip(tmp_path: Path) -> None:
    views = make_repo(tmp_path)
    with hw.FeatureStore(tmp_path) as store:
        store.apply([CARD, *views])
        end = T0 + timedelta(minutes=63)
        store.materialize(T0 - timedelta(days=1), end)
        counting = CountingReads(store.online)
        store._online = counting  # type: ignore[assignment]
        features = ["card_txn:amount_count_10m", "profile:limit", "card_txn:amount_sum_1h",
                    "card_txn:amount_mean_2h"]
        rows = [{"card_id": 1}, {"card_id": 2}, {"card_id": 3}]
        response = store.get_online_features(features, rows, full_feature_names=True, now=end)
        assert len(counting.reads) == 1 and sorted(counting.reads[0]) == ["card_txn",
                                                                           "profile"]
        got = response.to_dict()
        assert list(got) == ["card_id", "card_txn__amount_count_10m", "profile__limit",
                             "card_txn__amount_sum_1h", "card_txn__amount_mean_2h"]
        # at 1:03 the 10 min window starts at 0:53, the 1 h window at 0:03
        assert got["card_txn__amount_count_10m"] == [1, 1, 0]
        assert got["card_txn__amount_sum_1h"] == [60.0, 5.0, 0]
        assert got["card_txn__amount_mean_2h"] == [70.0 / 3, 5.0, None]
        assert got["profile__limit"] == [500, None, 900]
        meta = response.metadata["card_txn"]
        assert meta.statuses == ["PRESENT", "PRESENT", "MISSING"]
        assert meta.event_timestamps == [T0 + timedelta(minutes=61),
                                         T0 + timedelta(minutes=62), None]
        assert response.to_arrow().column("card_txn__amount_sum_1h").type == pa.float64()
        # later, the windows move on: nothing left in the 10 min window of card 1
        later = store.get_online_features(features[:1], rows[:1], now=end + timedelta(hours=1))
        assert later.to_dict()["amount_count_10m"] == [0]
        assert later.metadata["card_txn"].statuses == ["PRESENT"]
