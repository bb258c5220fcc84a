"""Apply-time checks of a ModelSpec against its label source and feature service."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import Ridge

import headwater as hw
from headwater.testing.models import LABELS_FILE
from tests.models.conftest import offer_model


def spec_with(store: hw.FeatureStore, source: hw.FileSource, column: str, *,
              estimator: object | None = None, name: str = "candidate") -> hw.ModelSpec:
    return hw.ModelSpec(name=name, features=store.get_feature_service("churn_features"),
                        label=hw.LabelSource(source, column),
                        estimator=estimator or HistGradientBoostingClassifier(max_iter=10))


def write_labels(churn_path: Path, table: pa.Table, name: str = "other.parquet") -> str:
    pq.write_table(table, churn_path / "data" / name)
    return f"data/{name}"


def labels(churn_path: Path) -> pa.Table:
    return pq.read_table(churn_path / LABELS_FILE)


def test_the_generated_models_apply(store: hw.FeatureStore) -> None:
    assert sorted(m.name for m in store.list_models()) == ["churn", "spend"]
    churn = store.get_model("churn")
    assert churn.task == "classification" and churn.label.column == "churned"


def test_missing_label_column_is_refused_and_nothing_is_written(store: hw.FeatureStore) -> None:
    source = store.get_model("churn").label.source
    before = store.registry.backend.last_change_id(store.project)
    with pytest.raises(hw.DefinitionError, match=(
            r"ModelSpec 'candidate': field 'label.column': FileSource 'churn_labels' has no "
            r"label column 'churn'\. Fix: add it to the label source or name one of its "
            r"columns: customer_id, ts, churned, spend_next_30d")):
        store.apply([spec_with(store, source, "churn")])
    assert store.registry.backend.last_change_id(store.project) == before
    assert [m.name for m in store.list_models() if m.name == "candidate"] == []


def test_missing_join_key_names_the_feature_service(store: hw.FeatureStore,
                                                    churn_path: Path) -> None:
    table = labels(churn_path).rename_columns(["id", "ts", "churned", "spend_next_30d"])
    source = hw.FileSource(write_labels(churn_path, table), timestamp_field="ts")
    with pytest.raises(hw.DefinitionError, match=(
            r"field 'label.source': .* has no column 'customer_id', a join key of feature "
            r"service 'churn_features'.*columns: id, ts")):
        store.apply([spec_with(store, source, "churned")])


def test_missing_timestamp_and_bad_time_type(store: hw.FeatureStore, churn_path: Path) -> None:
    source = hw.FileSource(LABELS_FILE, timestamp_field="when")
    with pytest.raises(hw.DefinitionError, match=r"field 'label.source.timestamp_field': .* "
                       r"has no timestamp column 'when'"):
        store.apply([spec_with(store, source, "churned")])
    table = labels(churn_path).append_column("when", pa.array(range(labels(churn_path)
                                                                     .num_rows)))
    source = hw.FileSource(write_labels(churn_path, table), timestamp_field="when")
    with pytest.raises(hw.DefinitionError, match=r"timestamp_field': column 'when' has type "
                       r"int64, not a time\. Fix: point it at a timestamp"):
        store.apply([spec_with(store, source, "churned")])


def test_label_type_must_suit_the_task(store: hw.FeatureStore, churn_path: Path) -> None:
    source = store.get_model("churn").label.source
    with pytest.raises(hw.DefinitionError, match=r"field 'label.column': label "
                       r"'spend_next_30d' has type double, which is not a class label"):
        store.apply([spec_with(store, source, "spend_next_30d")])
    table = labels(churn_path).append_column(
        "segment", pa.array(["a", "b"] * (labels(churn_path).num_rows // 2)
                            + ["a"] * (labels(churn_path).num_rows % 2)))
    text_source = hw.FileSource(write_labels(churn_path, table), timestamp_field="ts")
    with pytest.raises(hw.DefinitionError, match=r"label 'segment' has type string, not a "
                       r"number\. Fix: give a regression model a numeric label"):
        store.apply([spec_with(store, text_source, "segment", estimator=Ridge())])
    # the accepted ones: strings for a classifier, integers for a regressor
    store.apply([spec_with(store, text_source, "segment", name="by_segment"),
                 spec_with(store, source, "churned", estimator=Ridge(), name="churn_score")])
    assert {"by_segment", "churn_score"} <= {m.name for m in store.list_models()}


def test_a_label_named_like_a_feature_is_refused(store: hw.FeatureStore,
                                                 churn_path: Path) -> None:
    table = labels(churn_path).append_column(
        "sessions_7d", pa.array([1] * labels(churn_path).num_rows))
    source = hw.FileSource(write_labels(churn_path, table), timestamp_field="ts")
    with pytest.raises(hw.DefinitionError, match=r"feature\(s\) \['sessions_7d'\] of "
                       r"'churn_features' have the names of the label"):
        store.apply([spec_with(store, source, "sessions_7d")])


def test_views_come_from_the_same_apply_or_fail_clearly(store: hw.FeatureStore,
                                                        churn_path: Path) -> None:
    source = store.get_model("churn").label.source
    stats = store.get_feature_view("customer_stats")
    unseen = hw.FeatureView("unseen_stats", entities=stats.entities, source=stats.source,
                            schema=list(stats.schema))
    service = hw.FeatureService("unseen_features", features=[unseen])
    spec = hw.ModelSpec(name="unseen", features=service, label=hw.LabelSource(source,
                                                                              "churned"),
                        estimator=HistGradientBoostingClassifier(max_iter=10))
    with pytest.raises(hw.DefinitionError, match=r"ModelSpec 'unseen': field 'features': "
                       r"feature service 'unseen_features' selects view 'unseen_stats', "
                       r"which is neither registered nor being applied"):
        store.apply([service, spec])
    store.apply([unseen, service, spec])  # the view given in the same call is used
    assert store.get_model("unseen").features.name == "unseen_features"


def test_request_fields_must_be_label_columns(store: hw.FeatureStore) -> None:
    source = store.get_model("churn").label.source
    with pytest.raises(hw.DefinitionError, match=r"has no column 'discount', a request field "
                       r"of an on-demand view of feature service 'offer_features'"):
        store.apply(offer_model(store, source))
