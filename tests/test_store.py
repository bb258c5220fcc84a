"""The FeatureStore front door: apply validates against real files, retrieval resolves names."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DRIVER = hw.Entity("driver", join_keys=["driver_id"])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "headwater.yaml").write_text("project: test_store\n")
    (tmp_path / "data").mkdir()
    table = pa.table({
        "driver_id": pa.array([1, 1, 2], pa.int64()),
        "event_timestamp": pa.array([T0, T0 + timedelta(hours=1), T0], pa.timestamp("us", "UTC")),
        "created": pa.array([T0, T0 + timedelta(hours=1), T0], pa.timestamp("us", "UTC")),
        "conv_rate": pa.array([0.1, 0.2, 0.9]),
        "trips": pa.array([10, 20, 90], pa.int64()),
    })
    pq.write_table(table, tmp_path / "data" / "driver_stats.parquet")
    return tmp_path


def stats(**overrides: object) -> hw.FeatureView:
    kwargs: dict[str, object] = {
        "name": "driver_stats", "entities": [DRIVER],
        "source": hw.FileSource("data/driver_stats.parquet", timestamp_field="event_timestamp",
                                created_timestamp_field="created"),
        "schema": [hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int64)],
        "ttl": timedelta(days=1),
    }
    kwargs.update(overrides)
    return hw.FeatureView(**kwargs)  # type: ignore[arg-type]


def test_the_issue_snippet_end_to_end(repo: Path) -> None:
    service = hw.FeatureService("driver_model", features=[stats()])
    with hw.FeatureStore(repo_path=repo) as store:
        plan = store.apply([DRIVER, stats(), service])
        assert [c.action for c in plan.changes] == ["create"] * 3
        entity_df = pa.table({
            "driver_id": [1, 1, 2, 3],
            "event_timestamp": pa.array([T0 + timedelta(minutes=30), T0 + timedelta(hours=2),
                                         T0 + timedelta(days=2), T0], pa.timestamp("us", "UTC")),
            "label": [0, 1, 1, 0],
        })
        frame = store.get_historical_features(
            entity_df, features=["driver_stats:conv_rate", "driver_stats:trips"])
        df = frame.to_pandas()
        assert list(df.columns) == ["driver_id", "event_timestamp", "label", "conv_rate", "trips"]
        assert df["conv_rate"].tolist()[:2] == [0.1, 0.2]
        assert df["conv_rate"].isna().tolist()[2:] == [True, True]  # expired by ttl; unknown key
        by_service = store.get_historical_features(entity_df, features=service,
                                                   full_feature_names=True).to_arrow()
        assert by_service.column_names[-2:] == ["driver_stats__conv_rate", "driver_stats__trips"]
        assert by_service.column("driver_stats__trips").to_pylist() == [10, 20, None, None]
        star = store.get_historical_features(entity_df, features=["driver_stats:*"]).to_arrow()
        assert star.column_names[-2:] == ["conv_rate", "trips"]
        assert [v.name for v in store.list_feature_views()] == ["driver_stats"]
        registered = store.get_feature_view("driver_stats")
        assert registered.entity_columns == (hw.Field("driver_id", hw.Int64),)
        assert dataclasses.replace(registered, entity_columns=None) == stats()


def test_inferred_schema_is_registered(repo: Path) -> None:
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, stats(schema=None)])
        view = store.get_feature_view("driver_stats")
        assert view.schema == (hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int64))
        assert not store.plan([DRIVER, stats(schema=None)]).has_changes


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        (stats(schema=[hw.Field("conv_rat", hw.Float64)]), "schema[0]", "no column 'conv_rat'"),
        (stats(schema=[hw.Field("trips", hw.String)]), "schema[0]", "declared String"),
        (stats(source=hw.FileSource("data/driver_stats.parquet", timestamp_field="ts")),
         "source.timestamp_field", "no column 'ts'"),
        (stats(entities=[hw.Entity("rider", join_keys=["rider_id"])]), "entities",
         "join key 'rider_id' is absent"),
    ],
)
def test_apply_refuses_definitions_that_do_not_match_the_data(
        repo: Path, bad: hw.FeatureView, field: str, words: str) -> None:
    with hw.FeatureStore(repo) as store:
        with pytest.raises(hw.DefinitionError) as err:
            store.apply([DRIVER, hw.Entity("rider", join_keys=["rider_id"]), bad])
        assert err.value.field == field and words in str(err.value)
        assert store.registry.changes() == []  # nothing was written


def test_apply_refuses_duplicate_names_and_entity_mismatch(repo: Path) -> None:
    with hw.FeatureStore(repo) as store:
        with pytest.raises(hw.DefinitionError, match="two different definitions"):
            store.apply([DRIVER, stats(), stats(ttl=timedelta(days=2))])
        with pytest.raises(hw.DefinitionError, match="entity 'driver' differs"):
            store.apply([hw.Entity("driver", join_keys=["id"]), stats()])
        assert store.registry.changes() == []


def test_unknown_views_and_features_are_clear_errors(repo: Path) -> None:
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, stats()])
        entity_df = pa.table({"driver_id": [1], "event_timestamp": pa.array(
            [T0], pa.timestamp("us", "UTC"))})
        with pytest.raises(hw.NotFoundError, match="no feature_view named 'nope'"):
            store.get_historical_features(entity_df, ["nope:x"])
        with pytest.raises(hw.NotFoundError, match=r"no feature\(s\) \['speed'\]"):
            store.get_historical_features(entity_df, ["driver_stats:speed"])
        with pytest.raises(hw.DefinitionError, match="view:feature"):
            store.get_historical_features(entity_df, ["driver_stats"])
        with pytest.raises(hw.DefinitionError, match="FeatureService"):
            store.get_historical_features(entity_df, "driver_stats:trips")  # type: ignore[arg-type]


def test_same_feature_name_from_two_views_needs_full_names(repo: Path) -> None:
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, stats(), stats(name="driver_stats_copy")])
        entity_df = pa.table({"driver_id": [1], "event_timestamp": pa.array(
            [T0 + timedelta(hours=5)], pa.timestamp("us", "UTC"))})
        features = ["driver_stats:trips", "driver_stats_copy:trips"]
        with pytest.raises(hw.DefinitionError, match="full_feature_names=True"):
            store.get_historical_features(entity_df, features)
        out = store.get_historical_features(entity_df, features, full_feature_names=True)
        assert out.to_arrow().to_pydict()["driver_stats_copy__trips"] == [20]


def test_feature_columns_come_in_the_order_of_the_request(repo: Path) -> None:
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, stats(), stats(name="copy")])
        store.materialize(T0, T0 + timedelta(hours=2))
        features = ["copy:trips", "driver_stats:conv_rate", "copy:conv_rate",
                    "driver_stats:trips", "copy:trips"]
        expected = ["copy__trips", "driver_stats__conv_rate", "copy__conv_rate",
                    "driver_stats__trips"]
        at = T0 + timedelta(hours=2)
        entity_df = pa.table({"driver_id": [1], "event_timestamp": pa.array(
            [at], pa.timestamp("us", "UTC"))})
        offline = store.get_historical_features(entity_df, features, full_feature_names=True)
        assert offline.to_arrow().column_names == ["driver_id", "event_timestamp", *expected]
        assert offline.to_arrow().to_pylist()[0]["copy__trips"] == 20
        online = store.get_online_features(features, [{"driver_id": 1}],
                                           full_feature_names=True, now=at)
        assert list(online.to_dict()) == ["driver_id", *expected]
        assert online.to_arrow().column_names == ["driver_id", *expected]
