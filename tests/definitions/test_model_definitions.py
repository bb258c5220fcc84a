"""ModelSpec, LabelSource, splits and promotion rules: validation and the registry spec."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import headwater as hw
from headwater.definitions import from_spec
from headwater.definitions.model import build_estimator, infer_task

CUSTOMER = hw.Entity("customer", join_keys=["customer_id"])
VIEW = hw.FeatureView(name="activity", entities=[CUSTOMER],
                      source=hw.FileSource("data/activity.parquet", timestamp_field="ts"),
                      schema=[hw.Field("logins", hw.Int64), hw.Field("spend", hw.Float64)])
SERVICE = hw.FeatureService("churn_features", features=[VIEW])
LABELS = hw.LabelSource(source=hw.FileSource("data/labels.parquet", timestamp_field="ts"),
                        column="churned")


def spec(**changes: object) -> hw.ModelSpec:
    args: dict[str, object] = {"name": "churn", "features": SERVICE, "label": LABELS,
                               "estimator": HistGradientBoostingClassifier(max_iter=200),
                               "split": hw.TimeSplit(test_start="2024-11-01")}
    args.update(changes)
    return hw.ModelSpec(**args)  # type: ignore[arg-type]


def test_the_issue_example_builds_and_records_the_estimator() -> None:
    model = spec(metrics=["roc_auc", "log_loss"])
    assert model.task == "classification"
    assert model.estimator_class == (
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting."
        "HistGradientBoostingClassifier")
    assert model.params()["max_iter"] == 200
    assert model.metrics == ("roc_auc", "log_loss")
    assert model.split == hw.TimeSplit(test_start=datetime(2024, 11, 1, tzinfo=UTC))


def test_a_regressor_gets_regression_defaults() -> None:
    model = spec(estimator=HistGradientBoostingRegressor())
    assert model.task == "regression"
    assert model.metrics == ("rmse", "mae", "r2")


def test_spec_round_trips_and_rebuilds_an_equal_unfitted_estimator() -> None:
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.25, max_iter=321))
    model = spec(estimator=pipeline, promotion=[hw.PromotionRule("roc_auc",
                                                                 min_improvement=0.01)])
    text = json.dumps(model.spec())  # the registry stores JSON
    objects = {("feature_service", "churn_features"): SERVICE}
    decoded = from_spec(json.loads(text), lambda kind, name: objects[(kind, name)])
    assert decoded == model
    assert decoded.spec_hash() == model.spec_hash()
    rebuilt = build_estimator(decoded.estimator_class, decoded.params())
    assert rebuilt.get_params()["logisticregression__C"] == 0.25
    assert rebuilt.get_params()["logisticregression__max_iter"] == 321
    assert not hasattr(rebuilt, "classes_")  # unfitted


def test_a_changed_hyper_parameter_is_a_new_spec() -> None:
    assert spec().spec_hash() != spec(
        estimator=HistGradientBoostingClassifier(max_iter=100)).spec_hash()
    assert spec().spec_hash() == spec().spec_hash()


@pytest.mark.parametrize(("changes", "field"), [
    ({"name": "bad name"}, "name"),
    ({"features": "churn_features"}, "features"),
    ({"label": "churned"}, "label"),
    ({"estimator": None}, "estimator"),
    ({"estimator": object()}, "estimator"),
    ({"metrics": ["rmse"]}, "metrics"),
    ({"split": "2024-11-01"}, "split"),
    ({"promotion": [hw.PromotionRule("rmse")]}, "promotion"),
    ({"estimator": LogisticRegression(class_weight=lambda y: y)}, "estimator.class_weight"),
])
def test_invalid_specs_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(hw.DefinitionError) as info:
        spec(**changes)
    assert info.value.field == field
    assert "Fix:" in str(info.value)


def test_label_source_checks_its_column() -> None:
    source = hw.FileSource("data/labels.parquet", timestamp_field="ts")
    with pytest.raises(hw.DefinitionError, match="time column"):
        hw.LabelSource(source=source, column="ts")
    with pytest.raises(hw.DefinitionError, match="FileSource or SQLSource"):
        hw.LabelSource(source="data/labels.parquet", column="y")  # type: ignore[arg-type]


def test_splits_validate_their_bounds() -> None:
    split = hw.TimeSplit(test_start="2024-11-01", test_end="2024-12-01 00:00",
                         train_start=datetime(2024, 1, 1))
    train_start, test_start, test_end = split.times()
    assert test_start == datetime(2024, 11, 1, tzinfo=UTC)
    assert test_end == datetime(2024, 12, 1, tzinfo=UTC)
    assert train_start == datetime(2024, 1, 1, tzinfo=UTC)  # naive means UTC
    with pytest.raises(hw.DefinitionError, match="test_end"):
        hw.TimeSplit(test_start="2024-11-01", test_end="2024-10-01")
    with pytest.raises(hw.DefinitionError, match="train_start"):
        hw.TimeSplit(test_start="2024-11-01", train_start="2024-11-02")
    with pytest.raises(hw.DefinitionError, match="ISO"):
        hw.TimeSplit(test_start="next tuesday")
    for bad in (0, 1, 1.5, True):
        with pytest.raises(hw.DefinitionError, match="test_fraction"):
            hw.RandomSplit(test_fraction=bad)


def test_promotion_rules_follow_the_metric_direction() -> None:
    auc = hw.PromotionRule("roc_auc", min_improvement=0.01, threshold=0.7)
    assert auc.better(0.81, 0.80)
    assert not auc.better(0.805, 0.80)
    assert auc.meets_threshold(0.7) and not auc.meets_threshold(0.69)
    loss = hw.PromotionRule("log_loss", threshold=0.5)
    assert loss.better(0.30, 0.31) and not loss.better(0.32, 0.31)
    assert loss.meets_threshold(0.5) and not loss.meets_threshold(0.51)
    with pytest.raises(hw.DefinitionError, match="metric"):
        hw.PromotionRule("accuracyy")


def test_task_inference_uses_the_estimator_type() -> None:
    assert infer_task(LogisticRegression()) == "classification"
    assert infer_task(HistGradientBoostingRegressor()) == "regression"


def test_job_validates_schedule_action_and_target() -> None:
    job = hw.Job("nightly", schedule="0 2 * * *", action="materialize_incremental")
    assert job.retries == 2 and job.retry_backoff == timedelta(seconds=30)
    with pytest.raises(hw.DefinitionError) as info:
        hw.Job("nightly", schedule="0 25 * * *", action="materialize_incremental")
    assert info.value.field == "schedule"
    with pytest.raises(hw.DefinitionError) as info:
        hw.Job("retrain", schedule="@daily", action="train")
    assert info.value.field == "target"
    with pytest.raises(hw.DefinitionError) as info:
        hw.Job("x", schedule="* * * * *", action="backup")
    assert info.value.field == "action"
