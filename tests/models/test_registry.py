"""The model registry of a FeatureStore, on SQLite and PostgreSQL: registration, lookup,
gated promotion, history, diffs and verified, cached loading."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.errors import NotFoundError, RegistryError
from headwater.models import formats
from headwater.models import registry as registry_module
from headwater.models.base import PREDICTION, PROBABILITY, ModelRef, ModelVersion
from headwater.models.registry import ModelRegistry, PromotionRefused

from .test_formats import FEATURES, fitted, make_version

CUSTOMER = hw.Entity("customer", join_keys=["customer_id"])


def write_repo(path: Path, registry: str) -> None:
    """A repo whose registry is ``registry`` (a YAML value) with tiny feature and label
    files, enough for a ModelSpec to be applied."""
    (path / "data").mkdir(parents=True)
    (path / "headwater.yaml").write_text(f"project: proj\nregistry: {registry}\n")
    times = pa.array([datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)])
    ids = pa.array([1, 2, 3], pa.int64())
    pq.write_table(pa.table({"customer_id": ids, "ts": times,
                             **{f: pa.array([0.1, 0.2, 0.3]) for f in FEATURES}}),
                   path / "data" / "stats.parquet")
    pq.write_table(pa.table({"customer_id": ids, "ts": times,
                             "churned": pa.array([0, 1, 0], pa.int64())}),
                   path / "data" / "labels.parquet")


def churn_spec(*rules: hw.PromotionRule) -> list[Any]:
    view = hw.FeatureView("stats", entities=[CUSTOMER],
                          source=hw.FileSource("data/stats.parquet", timestamp_field="ts"),
                          schema=[hw.Field(f, hw.Float64) for f in FEATURES])
    service = hw.FeatureService("svc", features=[view])
    labels = hw.FileSource("data/labels.parquet", timestamp_field="ts", name="labels")
    spec = hw.ModelSpec(name="churn", features=service,
                        label=hw.LabelSource(labels, column="churned"),
                        estimator=fitted("logistic")[0], promotion=list(rules))
    return [CUSTOMER, view, service, spec]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[hw.FeatureStore]:
    """A FeatureStore whose registry is SQLite or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        registry = ".headwater/registry.db"
    else:
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        registry = f"{{url: '{url}', schema: {schema}}}"
    write_repo(tmp_path / "repo", registry)
    opened = hw.FeatureStore(tmp_path / "repo")
    try:
        yield opened
    finally:
        opened.close()


def register(models: ModelRegistry, kind: str = "logistic", *, run_id: str = "run1",
             name: str = "churn", **metrics: float) -> tuple[ModelVersion, Any]:
    """Fit ``kind``, store its artifact and register it with ``metrics``."""
    model, _ = fitted(kind)
    fmt, data = formats.dump(model)
    ref = models.artifacts.put(name, run_id, formats.filename(fmt), data, fmt)
    version = make_version(model, data, fmt, name=name, run_id=run_id, metrics=metrics,
                           artifact=ref)
    return models.register(version), model


def test_versions_are_registered_listed_and_found_by_number_or_alias(
        store: hw.FeatureStore) -> None:
    models = store.models
    first, _ = register(models, run_id="a", roc_auc=0.7)
    second, _ = register(models, run_id="b", roc_auc=0.8)
    register(models, name="fraud", run_id="c", roc_auc=0.9)
    assert (first.version, second.version) == (1, 2)
    assert models.names() == ["churn", "fraud"]
    assert [v.run_id for v in models.versions("churn")] == ["a", "b"]
    assert models.get("churn:2") == second
    assert models.get(ModelRef("churn", version=1)) == first
    assert store.get_model_version("churn:1") == first

    models.promote("churn", 1, "staging")
    assert models.aliases("churn") == {"staging": 1}
    assert models.get("churn@staging").version == 1
    with pytest.raises(NotFoundError, match=r"no alias 'production'; versions: \[1, 2\], "
                       r"aliases: staging -> 1\. Fix"):
        models.get("churn")  # the production alias by default
    with pytest.raises(NotFoundError, match=r"no version 5; versions: \[1, 2\]"):
        models.get("churn:5")
    with pytest.raises(NotFoundError, match=r"no model 'nope'.*models: \['churn', 'fraud'\]"):
        models.get("nope@production")


def test_registering_without_the_artifact_is_refused(store: hw.FeatureStore) -> None:
    model, _ = fitted("logistic")
    fmt, data = formats.dump(model)
    with pytest.raises(RegistryError, match=r"model\.skops is missing.*nothing was registered"):
        store.models.register(make_version(model, data, fmt))
    assert store.models.names() == []


def test_promotion_rules_gate_the_alias_and_force_overrides_them(
        store: hw.FeatureStore) -> None:
    store.apply(churn_spec(hw.PromotionRule("roc_auc"),
                           hw.PromotionRule("log_loss", min_improvement=0.01),
                           hw.PromotionRule("accuracy", alias="staging", threshold=0.6)))
    models = store.models
    register(models, run_id="a", roc_auc=0.70, log_loss=0.50, accuracy=0.65)
    register(models, run_id="b", roc_auc=0.75, log_loss=0.45, accuracy=0.55)
    register(models, run_id="c", roc_auc=0.72, log_loss=0.40, accuracy=0.70)
    register(models, run_id="d", roc_auc=0.80)

    first = store.promote("churn", 1)  # nothing behind the alias yet: only thresholds apply
    assert (first.from_version, first.to_version, first.reason) == (None, 1, "promote")
    second = models.promote("churn", 2)
    assert second.from_version == 1
    assert [c["passed"] for c in second.checks] == [True, True]
    assert second.checks[0] == {"metric": "roc_auc", "candidate": 0.75, "current": 0.70,
                                "current_version": 1, "threshold": None,
                                "min_improvement": 0.0, "passed": True}

    with pytest.raises(PromotionRefused) as err:  # a RegistryError a rule raised
        models.promote("churn", 3)  # better log_loss, worse roc_auc than version 2
    message = str(err.value)
    assert "rule roc_auc (production)" in message and "0.72" in message and "0.75" in message
    assert "log_loss" not in message  # that rule passed
    assert "force=True" in message
    with pytest.raises(RegistryError, match="version 4 has no metric 'log_loss'"):
        models.promote("churn", 4)
    assert models.aliases("churn") == {"production": 2}
    assert len(models.history("churn")) == 2

    forced = models.promote("churn", 3, force=True)
    assert forced.reason == "promote --force"
    assert [(c["metric"], c["passed"]) for c in forced.checks] == [
        ("roc_auc", False), ("log_loss", True)]
    assert models.aliases("churn") == {"production": 3}

    with pytest.raises(RegistryError, match=r"accuracy 0\.55 misses the threshold 0\.6"):
        models.promote("churn", 2, "staging")
    assert models.promote("churn", 3, "staging").checks[0]["passed"] is True

    history = models.history("churn")
    assert [(e.alias, e.to_version, e.reason) for e in history] == [
        ("production", 1, "promote"), ("production", 2, "promote"),
        ("production", 3, "promote --force"), ("staging", 3, "promote")]
    assert models.history() == history


def test_a_model_without_a_spec_has_no_rules(store: hw.FeatureStore) -> None:
    models = store.models
    register(models, run_id="a", roc_auc=0.9)
    register(models, run_id="b", roc_auc=0.1)
    models.promote("churn", 1)
    event = models.promote("churn", 2)
    assert (event.from_version, event.to_version, event.checks) == (1, 2, ())


def test_unset_alias_and_bad_alias_names(store: hw.FeatureStore) -> None:
    models = store.models
    register(models)
    models.promote("churn", 1, "staging")
    removed = models.unset_alias("churn", "staging")
    assert (removed.from_version, removed.to_version, removed.reason) == (1, None, "unset")
    assert models.aliases("churn") == {}
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        models.unset_alias("churn", "staging")
    with pytest.raises(RegistryError, match="is not a name"):
        models.promote("churn", 1, "prod/eu")
    with pytest.raises(NotFoundError, match="no version 9"):
        models.promote("churn", 9)


def test_diff_reports_params_metrics_features_and_lineage(store: hw.FeatureStore) -> None:
    models = store.models
    first, _ = register(models, run_id="a", roc_auc=0.7, log_loss=0.5)
    model, _ = fitted("logistic")
    fmt, data = formats.dump(model)
    ref = models.artifacts.put("churn", "b", formats.filename(fmt), data, fmt)
    changed = dataclasses.replace(
        make_version(model, data, fmt, run_id="b", metrics={"roc_auc": 0.75, "brier": 0.2},
                     artifact=ref),
        params={"C": 0.5}, features=("f1", "f0", "f9"),
        lineage={"feature_service": "svc", "feature_service_version": 3})
    models.register(changed)
    diff = models.diff("churn", 1, 2)
    assert diff.params == {"C": (None, 0.5)}
    assert diff.metrics["roc_auc"] == pytest.approx((0.7, 0.75, 0.05))
    assert diff.metrics["log_loss"] == (0.5, None, None)
    assert diff.metrics["brier"] == (None, 0.2, None)
    assert diff.features_added == ("f9",)
    assert diff.features_removed == ("f2", "f3")
    assert diff.features_reordered  # f1 now comes before f0
    assert diff.lineage == {"feature_service_version": (None, 3)}
    assert first.features == FEATURES


@pytest.mark.parametrize("kind", ["hgb", "lightgbm", "xgboost"])
def test_load_predicts_like_the_estimator_and_is_cached_per_version(
        store: hw.FeatureStore, kind: str) -> None:
    models = store.models
    version, model = register(models, kind)
    models.promote("churn", version.version)
    predictor = store.load_model("churn@production")
    assert predictor is models.load("churn:1")  # one load per version
    x = fitted(kind)[1]
    out = predictor.predict(pa.table({f: x[:, i] for i, f in enumerate(FEATURES)}))
    assert np.array_equal(out[PREDICTION], model.predict(x))
    assert np.allclose(out[PROBABILITY], model.predict_proba(x)[:, 1], rtol=0, atol=1e-12)


def test_an_alias_move_is_seen_at_once_here_and_after_the_refresh_elsewhere(
        store: hw.FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    models = store.models
    register(models, run_id="a")
    register(models, run_id="b")
    models.promote("churn", 1)
    other = ModelRegistry(store)  # another server process's registry
    assert other.load("churn").version.version == 1
    models.promote("churn", 2)
    assert models.load("churn").version.version == 2  # the promoting registry: at once
    monkeypatch.setattr(registry_module, "ALIAS_REFRESH_S", 1e9)
    assert other.load("churn").version.version == 1  # within the refresh interval: cached
    monkeypatch.setattr(registry_module, "ALIAS_REFRESH_S", 0.0)
    assert other.load("churn").version.version == 2  # after it: the new version
    models.unset_alias("churn", "production")
    with pytest.raises(NotFoundError, match="no alias 'production'"):
        other.load("churn")


def test_a_tampered_artifact_is_refused_on_load(store: hw.FeatureStore) -> None:
    version, _ = register(store.models, "xgboost")
    path = store.models.artifacts.path(version.artifact)
    path.write_bytes(path.read_bytes().replace(b"base_score", b"base_scorf"))
    with pytest.raises(RegistryError, match=r"does not match the registry: expected sha256 "
                       rf"{version.artifact.sha256}, actual [0-9a-f]{{64}}.*do not edit "
                       "artifacts by hand"):
        store.models.load("churn:1")
