"""train_model end to end on the generated churn repo: scikit-learn, LightGBM and XGBoost
classifiers and a regressor; versions, lineage, fingerprints, artifacts and errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn import metrics as skm

import headwater as hw
from headwater.definitions.base import to_spec
from headwater.models.frame import build_training_frame
from headwater.models.split import split_frame
from headwater.models.training import train_model
from headwater.testing.models import LABELS_FILE, feature_names

LINEAGE_KEYS = {"model_spec_version", "feature_service", "feature_service_version",
                "feature_views", "training_fingerprint", "label_source", "label_column",
                "rows", "split", "fit_seconds", "code_revision", "headwater_version"}


def versions(store: hw.FeatureStore, model: str) -> list[int]:
    return [v.version for v in store.registry.backend.model_versions(store.project, model)]


def variant(store: hw.FeatureStore, name: str, estimator: Any) -> hw.ModelSpec:
    """The churn model with another estimator."""
    churn = store.get_model("churn")
    spec = hw.ModelSpec(name=name, features=churn.features, label=churn.label,
                        estimator=estimator, split=churn.split, metrics=churn.metrics)
    store.apply([spec])
    return spec


def test_train_registers_a_version_with_metrics_and_lineage(store: hw.FeatureStore) -> None:
    steps: list[tuple[str, int]] = []
    run = store.train("churn", progress=lambda step, rows: steps.append((step, rows)))
    spec = store.get_model("churn")
    frame = build_training_frame(store, spec)
    assert run.version == 1 and run.model == "churn" and len(run.run_id) == 32
    assert set(run.metrics) == {"roc_auc", "log_loss", "accuracy"}
    assert run.metrics["roc_auc"] > 0.7  # the labels depend on the features
    assert 0 < run.metrics["log_loss"] < 0.69 and 0.5 < run.metrics["accuracy"] <= 1
    assert run.rows_train + run.rows_test == frame.num_rows
    assert run.fingerprint == frame.fingerprint
    assert 0 < run.fit_seconds < run.total_seconds
    assert [s for s, _ in steps] == ["frame", "split", "fit", "evaluate", "reference",
                                     "artifacts", "register"]
    assert steps[0] == ("frame", frame.num_rows) and steps[2] == ("fit", run.rows_train)

    version = run.model_version
    assert version.features == feature_names(10)
    assert version.classes == (0, 1) and all(type(c) is int for c in version.classes)
    assert (version.task, version.input_kind) == ("classification", "matrix")
    assert version.estimator_class == spec.estimator_class
    assert version.estimator_class.startswith("sklearn.ensemble.")
    assert version.estimator_class.endswith(".HistGradientBoostingClassifier")
    assert version.params == spec.params() and version.params["max_iter"] == 100
    assert version.feature_types == dict.fromkeys(feature_names(10), "double")
    assert version.metrics == run.metrics

    lineage = version.lineage
    assert set(lineage) == LINEAGE_KEYS
    record = store.registry.record
    assert lineage["model_spec_version"] == record("model", "churn").version
    assert lineage["feature_service"] == "churn_features"
    assert lineage["feature_service_version"] == record("feature_service",
                                                        "churn_features").version
    assert lineage["feature_views"] == {
        "customer_stats": record("feature_view", "customer_stats").version}
    assert lineage["training_fingerprint"] == frame.fingerprint
    assert lineage["label_source"] == to_spec(spec.label.source)
    assert lineage["label_column"] == "churned"
    assert lineage["rows"] == {"train": run.rows_train, "test": run.rows_test}
    assert lineage["split"] == to_spec(spec.split)
    assert lineage["fit_seconds"] == round(run.fit_seconds, 6) > 0
    assert lineage["code_revision"] is None  # the tmp repo is not a git work tree
    assert lineage["headwater_version"] == hw.__version__

    stored = store.registry.backend.model_version(store.project, "churn", 1)
    assert stored is not None
    assert (stored.lineage, stored.metrics, stored.run_id) == (lineage, run.metrics,
                                                               run.run_id)


def test_a_second_run_is_the_next_version_on_the_same_data(store: hw.FeatureStore) -> None:
    first = store.train("churn")
    second = store.train("churn")
    assert (first.version, second.version) == (1, 2)
    assert second.run_id != first.run_id
    assert second.fingerprint == first.fingerprint
    assert second.metrics == first.metrics  # the estimator is seeded: the same model
    assert versions(store, "churn") == [1, 2]


def test_fingerprint_and_lineage_follow_changed_data(store: hw.FeatureStore,
                                                     churn_path: Path) -> None:
    first = store.train("churn")
    labels = pq.read_table(churn_path / LABELS_FILE)
    churned = labels.column("churned").to_numpy().copy()
    churned[3] = 1 - churned[3]
    pq.write_table(labels.set_column(2, "churned", pa.array(churned)),
                   churn_path / LABELS_FILE)
    second = store.train("churn")
    assert second.fingerprint != first.fingerprint
    assert second.model_version.lineage["training_fingerprint"] == second.fingerprint


def test_training_in_another_process_rebuilds_the_registered_estimator(
        store: hw.FeatureStore, churn_path: Path) -> None:
    """A store that never saw the Python estimator object trains what was registered."""
    fresh = hw.FeatureStore(churn_path)
    try:
        assert fresh.get_model("churn").estimator is None
        run = train_model(fresh, "churn")
    finally:
        fresh.close()
    assert run.model_version.params["max_iter"] == 100
    assert run.metrics == store.train("churn").metrics


@pytest.mark.parametrize(("name", "make", "fmt"), [
    ("churn_lgbm", lambda: __import__("lightgbm").LGBMClassifier(
        n_estimators=60, learning_rate=0.1, verbose=-1, random_state=0, n_jobs=1), "lightgbm-text"),
    ("churn_xgb", lambda: __import__("xgboost").XGBClassifier(
        n_estimators=60, max_depth=3, random_state=0, n_jobs=1), "xgboost-json"),
])
def test_lightgbm_and_xgboost_train_and_load_back(store: hw.FeatureStore, name: str,
                                                  make: Any, fmt: str) -> None:
    spec = variant(store, name, make())
    run = store.train(name)
    assert run.version == 1
    assert run.metrics["roc_auc"] > 0.7
    assert run.model_version.artifact.format == fmt
    assert run.model_version.classes == (0, 1)
    # the stored artifact predicts what the fitted model did on the test rows
    frame = build_training_frame(store, store.get_model(name))
    test = split_frame(frame.table, frame.timestamp, spec.split, model=name).test
    loaded = store.load_model(f"{name}:1")
    probability = loaded.predict(test)["probability"]
    y = test.column("churned").to_numpy()
    assert skm.roc_auc_score(y, probability) == pytest.approx(run.metrics["roc_auc"])


def test_regressor_trains_with_regression_metrics(store: hw.FeatureStore) -> None:
    run = store.train("spend")
    assert set(run.metrics) == {"rmse", "mae", "r2"}
    assert run.metrics["r2"] > 0.5
    assert 0 < run.metrics["mae"] <= run.metrics["rmse"]
    version = run.model_version
    assert version.task == "regression" and version.classes == ()
    assert version.lineage["label_column"] == "spend_next_30d"


def test_ridge_on_a_random_split(store: hw.FeatureStore) -> None:
    from sklearn.linear_model import Ridge

    churn = store.get_model("spend")
    store.apply([hw.ModelSpec(name="spend_ridge", features=churn.features, label=churn.label,
                              estimator=Ridge(alpha=1.0), split=hw.RandomSplit(0.25, seed=1),
                              metrics=["rmse", "r2", "mape"])])
    run = store.train("spend_ridge")
    assert run.metrics["r2"] > 0.3
    assert run.model_version.artifact.format == "skops"
    assert run.model_version.lineage["split"] == {"$type": "RandomSplit",
                                                  "test_fraction": 0.25, "seed": 1}
    assert run.rows_test == round((run.rows_train + run.rows_test) * 0.25)


def test_reference_statistics_are_stored_with_the_version(store: hw.FeatureStore) -> None:
    run = store.train("churn")
    reference = run.model_version.reference
    assert reference is not None and reference.format == "json"
    stats = json.loads(store.models.artifacts.get(reference))
    assert list(stats["features"]) == list(feature_names(10))
    assert stats["rows"] == run.rows_train
    assert stats["features"]["sessions_7d"]["count"] == run.rows_train
    assert sum(stats["features"]["sessions_7d"]["histogram"]["counts"]) == run.rows_train
    assert stats["label"]["kind"] == "numeric" and 0 < stats["label"]["mean"] < 1
    assert stats["prediction"]["count"] == run.rows_test
    assert 0 <= stats["probability"]["min"] <= stats["probability"]["max"] <= 1


def test_code_revision_is_the_repos_git_commit(store: hw.FeatureStore,
                                               churn_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=churn_path, check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    git("add", "churn.py")
    git("commit", "-q", "-m", "models")
    run = store.train("churn")
    assert run.model_version.lineage["code_revision"] == git("rev-parse", "HEAD")


def test_unknown_model_is_not_found(store: hw.FeatureStore) -> None:
    with pytest.raises(hw.NotFoundError, match="churn_x"):
        store.train("churn_x")


def test_empty_test_set_fails_before_anything_is_registered(store: hw.FeatureStore) -> None:
    churn = store.get_model("churn")
    store.apply([hw.ModelSpec(name="late", features=churn.features, label=churn.label,
                              estimator_class=churn.estimator_class,
                              estimator_params=churn.estimator_params, task=churn.task,
                              split=hw.TimeSplit(test_start="2030-01-01"))])
    with pytest.raises(hw.DataError, match=r"ModelSpec 'late': the test set is empty"):
        store.train("late")
    assert versions(store, "late") == []


def test_estimator_refusing_the_data_is_a_data_error(store: hw.FeatureStore,
                                                     churn_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    stats_path = churn_path / "data" / "customer_stats.parquet"
    stats = pq.read_table(stats_path)
    values = stats.column("sessions_7d").to_numpy().copy()
    values[::3] = np.nan
    pq.write_table(stats.set_column(2, "sessions_7d", pa.array(values, from_pandas=True)),
                   stats_path)
    variant(store, "churn_lr", LogisticRegression())
    with pytest.raises(hw.DataError, match=r"(?s)ModelSpec 'churn_lr': sklearn\.linear_model\."
                       r".*LogisticRegression could not be fitted.*NaN.*Fix:.*imputer"):
        store.train("churn_lr")
    assert versions(store, "churn_lr") == []


def test_multiclass_string_labels(store: hw.FeatureStore, churn_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    labels = pq.read_table(churn_path / LABELS_FILE)
    spend = labels.column("spend_next_30d").to_numpy()
    tiers = np.where(spend < np.quantile(spend, 1 / 3), "low",
                     np.where(spend < np.quantile(spend, 2 / 3), "mid", "high"))
    pq.write_table(labels.append_column("tier", pa.array(tiers)),
                   churn_path / "data" / "tiers.parquet")
    churn = store.get_model("churn")
    store.apply([hw.ModelSpec(
        name="tier", features=churn.features,
        label=hw.LabelSource(hw.FileSource("data/tiers.parquet", timestamp_field="ts"),
                             "tier"),
        estimator=HistGradientBoostingClassifier(max_iter=30, random_state=0),
        split=churn.split, metrics=["roc_auc", "log_loss", "accuracy", "f1"])])
    run = store.train("tier")
    assert run.model_version.classes == ("high", "low", "mid")
    assert run.metrics["roc_auc"] > 0.7 and run.metrics["accuracy"] > 1 / 3
    reference = run.model_version.reference
    assert reference is not None
    stats = json.loads(store.models.artifacts.get(reference))
    assert stats["label"]["kind"] == "categorical"
    assert {t["value"] for t in stats["label"]["top"]} == {"high", "low", "mid"}
    assert stats["prediction"]["kind"] == "categorical"
