"""hw.Monitor: the definition, the apply check, runs stored in the registry, alerts sent to a
real local webhook receiver, checks that cannot run reported as failed findings, and
retraining that promotes a candidate only when it beats production on fresh test rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sklearn.dummy import DummyClassifier

import headwater as hw
from headwater.errors import DataError, DefinitionError, NotFoundError, RegistryError
from headwater.monitoring.profile import NumericProfile, reference_profile
from headwater.monitoring.reference_drift import load_reference
from headwater.monitoring.retrain import retrain
from headwater.testing.models import (
    FEATURE_NAMES,
    START,
    applied_store,
    churn_repo,
    log_scored,
    split_start,
)
from tests.monitoring.test_alerts import Receiver, dead_port, receiver

__all__ = ["receiver"]  # the fixture, used by name

DAYS = 40
END = START + timedelta(days=DAYS)  # the generated data's end
DAY = timedelta(days=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[hw.FeatureStore]:
    repo = churn_repo(tmp_path / "repo", customers=120, days=DAYS)
    instance = applied_store(repo)
    try:
        yield instance
    finally:
        instance.close()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({}, "model"),
    ({"model": "churn", "feature_view": "customer_stats"}, "model"),
    ({"model": "churn", "checks": ("quality",)}, "checks"),
    ({"feature_view": "customer_stats", "checks": ("skew",)}, "checks"),
    ({"model": "churn", "checks": ("skew", "skew")}, "checks"),
    ({"model": "churn", "window": timedelta(0)}, "window"),
    ({"model": "churn", "freshness": timedelta(hours=1)}, "freshness"),
    ({"model": "churn", "thresholds": {"p_value": 0.1}}, "thresholds"),
    ({"model": "churn", "thresholds": {"fdr": -1}}, "thresholds"),
    ({"model": "churn", "thresholds": {"fdr": 5.0}}, "thresholds"),
    ({"model": "churn", "thresholds": {"fdr": float("nan")}}, "thresholds"),
    ({"model": "churn", "thresholds": {"min_labels": float("inf")}}, "thresholds"),
    ({"model": "churn", "thresholds": {"max_mismatch_rate": 1.5}}, "thresholds"),
    ({"feature_view": "customer_stats", "thresholds": {"min_rows": 2.7}}, "thresholds"),
    ({"model": "churn", "thresholds": {"drift.": 0.1}}, "thresholds"),
    ({"model": "churn", "webhooks": ("ftp://hooks.example",)}, "webhooks"),
    ({"model": "churn", "webhooks": ("http://",)}, "webhooks"),
    ({"model": "churn", "webhooks": ("http://hooks.example:port/x",)}, "webhooks"),
    ({"model": "churn", "description": 3}, "description"),
    ({"feature_view": "customer_stats", "retrain": True}, "retrain"),
])
def test_invalid_monitors_name_the_field_and_the_fix(kwargs: dict[str, object],
                                                     field: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        hw.Monitor("watch", **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field and "Fix:" in str(caught.value)


def test_drift_thresholds_by_column_or_kind() -> None:
    watch = hw.Monitor("m", model="churn", checks="drift",
                       thresholds={"drift.numeric": 0.2, "drift.sessions_7d": 0.5, "fdr": 0.05})
    assert watch.checks == ("drift",)
    assert watch.drift_thresholds == {"numeric": 0.2, "sessions_7d": 0.5}


def test_default_checks_by_subject() -> None:
    assert hw.Monitor("m", model="churn").checks == ("drift", "performance", "skew")
    assert hw.Monitor("v", feature_view="customer_stats").checks == ("quality",)
    assert hw.Monitor("s", feature_service="churn_features").subject == (
        "feature_service:churn_features")


def test_a_monitor_of_an_unknown_subject_is_refused_at_apply(store: hw.FeatureStore) -> None:
    with pytest.raises(RegistryError, match="feature_view 'no_such_view'"):
        store.apply([hw.Monitor("m", feature_view="no_such_view")])
    with pytest.raises(NotFoundError):
        store.get_monitor("m")  # nothing was written


def test_a_subject_cannot_be_deleted_under_its_monitor_and_runs_outlive_it(
        store: hw.FeatureStore) -> None:
    from headwater.repo.loader import load_definitions

    watch = hw.Monitor("m", feature_view="customer_stats", window=DAY)
    store.apply([watch])
    run = store.run_monitor("m", end=END)
    with pytest.raises(RegistryError, match="monitor 'm' watches feature_view"):
        store.apply([watch], prune=True)  # would delete the view and keep the monitor
    store.apply(load_definitions(store.repo_path), prune=True)  # deletes the monitor
    with pytest.raises(NotFoundError):
        store.get_monitor("m")
    assert store.monitor_runs("m") == [run]


def test_a_stale_view_alerts_the_webhook_and_the_run_is_stored(
        store: hw.FeatureStore, receiver: Receiver) -> None:
    store.apply([hw.Monitor("stats_fresh", feature_view="customer_stats", window=DAY,
                            freshness=timedelta(hours=6), webhooks=(receiver.url,))])
    late = END + 2 * DAY  # two days after the last row
    run = store.run_monitor("stats_fresh", end=late)
    failed = {(f.check, f.target) for f in run.findings if f.failed}
    # nothing arrived in the window, and the newest row is two days old
    assert failed == {("quality.volume", ""), ("quality.freshness", "")}
    assert run.status == "alert" and run.alerts_sent == 1
    (path, headers, body) = receiver.received[0]
    payload = json.loads(body)
    assert path == "/hooks/monitor" and headers["Content-Type"] == "application/json"
    assert payload["monitor"] == "stats_fresh" and payload["failed"] == 2
    assert {(f["check"], f["target"]) for f in payload["findings"]} == failed
    (stored,) = store.monitor_runs("stats_fresh")
    assert stored == run
    assert (stored.window_start, stored.window_end) == (late - DAY, late)


def test_a_healthy_window_is_ok_and_sends_nothing(store: hw.FeatureStore,
                                                  receiver: Receiver) -> None:
    store.apply([hw.Monitor("stats_fresh", feature_view="customer_stats", window=3 * DAY,
                            freshness=2 * DAY, webhooks=(receiver.url,))])
    run = store.run_monitor("stats_fresh", end=END)
    assert run.status == "ok", [f.message for f in run.findings if f.failed]
    assert run.alerts_sent == 0 and receiver.received == []


def test_an_unreachable_webhook_does_not_fail_the_run(store: hw.FeatureStore) -> None:
    url = f"http://127.0.0.1:{dead_port()}/hook"
    store.apply([hw.Monitor("stats_fresh", feature_view="customer_stats", window=DAY,
                            freshness=timedelta(hours=1), webhooks=(url,))])
    run = store.run_monitor("stats_fresh", end=END + 2 * DAY)
    assert run.status == "alert" and run.alerts_sent == 0
    assert store.monitor_runs("stats_fresh") == [run]


def test_a_feature_service_monitor_checks_each_of_its_views(store: hw.FeatureStore) -> None:
    store.apply([hw.Monitor("service_quality", feature_service="churn_features",
                            window=3 * DAY)])
    run = store.run_monitor("service_quality", end=END)
    assert {f.subject for f in run.findings} == {"feature_view:customer_stats"}
    assert run.status == "ok"


def test_model_checks_that_find_no_predictions_fail_loudly(store: hw.FeatureStore) -> None:
    store.train("churn")
    # retrain=True: checks that measured nothing are no reason to retrain
    store.apply([hw.Monitor("churn_watch", model="churn", window=7 * DAY, retrain=True)])
    run = store.run_monitor("churn_watch", end=END, alerts=False)
    assert run.status == "alert" and run.alerts_sent == 0
    # every check of the model said it had nothing to look at: none passed silently
    assert {(f.check, f.value, f.failed) for f in run.findings} == {
        ("drift.feature", None, True), ("performance.predictions", None, True),
        ("skew.mismatch_rate", None, True)}
    assert all("logged no prediction" in f.message or "no predictions were logged"
               in f.message for f in run.findings)
    assert [v.version for v in store.models.versions("churn")] == [1]  # nothing retrained


def test_runs_are_listed_newest_first_and_unknown_monitors_are_named(
        store: hw.FeatureStore) -> None:
    store.apply([hw.Monitor("stats_fresh", feature_view="customer_stats", window=DAY)])
    first = store.run_monitor("stats_fresh", end=END)
    second = store.run_monitor("stats_fresh", end=END + DAY)
    assert store.monitor_runs("stats_fresh") == [second, first]
    assert store.monitor_runs("stats_fresh", limit=1) == [second]
    with pytest.raises(NotFoundError, match="stats_fresh"):
        store.monitor_runs("nope")


def weak(store: hw.FeatureStore) -> hw.ModelSpec:
    spec = store.get_model("churn")
    return hw.ModelSpec(name="churn", features=spec.features, label=spec.label,
                        estimator=DummyClassifier(strategy="prior"), split=spec.split,
                        metrics=spec.metrics, promotion=spec.promotion)


def test_retraining_promotes_only_a_candidate_that_beats_production(
        store: hw.FeatureStore) -> None:
    strong = store.get_model("churn")
    store.apply([weak(store)])
    store.train("churn")
    store.promote("churn", 1, force=True)  # a model that always answers the base rate
    store.apply([strong])
    fresh = (split_start(DAYS), END + DAY)

    better = retrain(store, "churn", start=fresh[0], end=fresh[1])
    assert (better.candidate, better.production, better.metric) == (2, 1, "roc_auc")
    # the prior's probabilities are one constant: its roc_auc is exactly 0.5
    assert better.production_score == 0.5
    assert better.candidate_score is not None and better.candidate_score > 0.5
    assert better.promoted and store.get_model_version("churn@production").version == 2
    assert not better.finding("model:churn").failed

    # the same estimator again scores the same: not better, production stays
    same = retrain(store, "churn", start=fresh[0], end=fresh[1])
    assert same.candidate == 3 and same.candidate_score == same.production_score
    assert not same.promoted and store.get_model_version("churn@production").version == 2
    assert same.finding("model:churn").failed

    # no test row in the window: nothing to compare on, nothing promoted
    early = retrain(store, "churn", start=START, end=START + DAY)
    assert early.rows == 0 and not early.promoted and "no row" in early.reason
    assert store.get_model_version("churn@production").version == 2


def log_predictions(store: hw.FeatureStore, at: list[datetime]) -> pa.Table:
    """Score customer 1..n at the times ``at`` with churn:1 and log them with the real
    PredictionLog, each at its time; the scored rows."""
    customers = [1 + i % 100 for i in range(len(at))]
    times = pa.array(at, pa.timestamp("us", "UTC"))
    scored = store.predict("churn:1", pa.table({"customer_id": customers, "ts": times}),
                           ).to_arrow()
    assert log_scored(store, scored, times) == len(at)
    return scored


def test_drift_thresholds_reach_the_drift_check(store: hw.FeatureStore) -> None:
    store.train("churn")
    log_predictions(store, [END - DAY + timedelta(minutes=i) for i in range(60)])
    store.apply([hw.Monitor("churn_drift", model="churn", checks=("drift",), window=DAY,
                            thresholds={"drift.numeric": 7.5, "drift.sessions_7d": 9.0})])
    run = store.run_monitor("churn_drift", end=END, alerts=False)
    limits = {f.target: f.threshold for f in run.findings if f.check == "drift.feature"}
    assert limits["sessions_7d"] == 9.0
    assert {limits[n] for n in FEATURE_NAMES if n != "sessions_7d"} == {7.5}
    assert not any(f.failed for f in run.findings if f.check == "drift.feature")


def test_drift_runs_store_window_profiles_that_merge(store: hw.FeatureStore) -> None:
    store.train("churn")
    first = [END - 2 * DAY + timedelta(minutes=i) for i in range(120)]
    second = [END - DAY + timedelta(minutes=i) for i in range(80)]
    scored = log_predictions(store, first + second)
    store.apply([hw.Monitor("churn_drift", model="churn", checks=("drift",), window=DAY)])
    runs = [store.run_monitor("churn_drift", end=END - DAY, alerts=False),
            store.run_monitor("churn_drift", end=END, alerts=False)]
    assert [r.profiles["churn:1"].rows for r in runs] == [120, 80]
    merged = store.monitor_profile("churn_drift")
    assert merged.rows == 200
    reference = load_reference(store, store.get_model_version("churn:1"))
    assert reference is not None
    whole = reference_profile(reference, scored.select(
        [*FEATURE_NAMES, "prediction", "probability"]))
    for name in (*FEATURE_NAMES, "probability"):
        got, want = merged[name], whole[name]
        assert isinstance(got, NumericProfile) and isinstance(want, NumericProfile)
        assert (got.count, got.counts, got.edges) == (want.count, want.counts, want.edges)
        assert got.mean == pytest.approx(want.mean, rel=1e-12)
        assert got.std == pytest.approx(want.std, rel=1e-9)
    with pytest.raises(DataError, match="no run holds a profile of 'churn:2'"):
        store.monitor_profile("churn_drift", "churn:2")
