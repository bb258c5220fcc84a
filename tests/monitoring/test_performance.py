"""Model performance monitoring: delayed labels joined to logged predictions, metrics per
window, degradation against the training metrics.

The store tests train the generated churn model, score its test-period label rows an hour
before each label's time, write those predictions with the real ``PredictionLog`` and judge
them against labels that arrive later; the expected numbers are computed here with
scikit-learn from the rows as constructed. The join is checked against a brute-force
oracle on random data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

import headwater as hw
from headwater.errors import DataError, DefinitionError
from headwater.monitoring.labels import join_labels
from headwater.monitoring.performance import (
    WindowMetrics,
    check_performance,
    degradation,
    performance_over_time,
)
from headwater.testing.models import (
    LABELS_FILE,
    applied_store,
    churn_repo,
    log_scored,
    split_start,
)

DAYS = 40
T0 = split_start(DAYS)  # the model's test period, which the log replays, starts here
DAY = timedelta(days=1)
UTC_US = pa.timestamp("us", "UTC")
DROPS = {"accuracy": 0.1, "roc_auc": 0.1, "log_loss": 0.2}
"""Wider than the defaults: at 60-110 labels a window's log_loss varies by 20% here."""


@dataclass(frozen=True)
class Served:
    store: hw.FeatureStore
    repo: Path
    labels: pa.Table  # the test-period label rows, one per logged prediction, same order
    logged_at: np.ndarray  # datetime64[us] of each prediction
    prediction: np.ndarray
    probability: np.ndarray
    training: dict[str, float]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The churn model trained (version 1) and its predictions of the test period logged,
    each an hour before the label row it is for."""
    repo = churn_repo(tmp_path_factory.mktemp("perf") / "repo", customers=300, days=DAYS)
    store = applied_store(repo)
    try:
        run = store.train("churn")
        labels = pq.read_table(repo / LABELS_FILE)
        labels = labels.filter(pc.greater_equal(labels["ts"], pa.scalar(T0, UTC_US)))
        at = pc.subtract(labels["ts"], pa.scalar(timedelta(hours=1)))
        scored = store.predict("churn:1", pa.table({"customer_id": labels["customer_id"],
                                                    "ts": at})).to_arrow()
        assert log_scored(store, scored, at) == labels.num_rows
        yield Served(store, repo, labels, at.to_numpy().astype("datetime64[us]"),
                     scored["prediction"].to_numpy(), scored["probability"].to_numpy(),
                     dict(run.metrics))
    finally:
        store.close()


def window_of(served: Served, start: datetime, window: timedelta) -> np.ndarray:
    offset = served.logged_at - np.datetime64(start.replace(tzinfo=None), "us")
    return np.asarray(offset // np.timedelta64(window), dtype=np.int64)


def sklearn_metrics(y: np.ndarray, prediction: np.ndarray, probability: np.ndarray
                    ) -> dict[str, float]:
    return {"accuracy": skm.accuracy_score(y, prediction),
            "log_loss": skm.log_loss(y, probability, labels=[0, 1]),
            "roc_auc": skm.roc_auc_score(y, probability)}


def test_the_whole_test_period_in_one_window_gives_the_training_metrics(
        served: Served) -> None:
    result = check_performance(served.store, "churn", start=T0, end=T0 + 10 * DAY,
                               window=10 * DAY, min_labels=1)  # the ModelSpec's labels
    (window,) = result.windows
    assert (window.predictions, window.labelled, window.model_version) == (
        served.labels.num_rows, served.labels.num_rows, 1)
    assert window.metrics == pytest.approx(served.training, rel=1e-9)
    assert result.training == {1: served.training}
    assert result.failed == [] and result.unlabelled == 0
    assert json.loads(json.dumps(result.to_dict()))["training"] == {"1": served.training}
    assert sorted(f.check for f in result.findings) == [
        f"performance.{m}" for m in sorted(served.training)]


def test_a_window_of_flipped_labels_is_flagged_there_and_only_there(served: Served) -> None:
    window, drops = 2 * DAY, DROPS
    slot = window_of(served, T0, window)
    truth = served.labels["churned"].to_numpy()
    flipped = np.where(slot == 2, 1 - truth, truth)
    labels = served.labels.select(["customer_id", "ts"]).to_pandas().assign(churned=flipped)
    result = check_performance(served.store, "churn", labels, start=T0, end=T0 + 10 * DAY,
                               window=window, min_labels=30, allowed_drop=drops)
    assert [w.start for w in result.windows] == [T0 + i * window for i in range(5)]
    expected_failed = set()
    for i, w in enumerate(result.windows):
        rows = slot == i
        expected = sklearn_metrics(flipped[rows], served.prediction[rows],
                                   served.probability[rows])
        assert (w.predictions, w.labelled) == (rows.sum(), rows.sum())
        assert w.metrics == pytest.approx(expected, rel=1e-9)
        for metric, value in expected.items():
            lower = metric == "log_loss"
            bound = served.training[metric] + (drops[metric] if lower else -drops[metric])
            if (value > bound) if lower else (value < bound):
                expected_failed.add((metric, w.start))
    assert expected_failed == {(m, T0 + 2 * window) for m in served.training}
    assert {(f.target, f.window_start) for f in result.failed} == expected_failed
    bad = next(f for f in result.failed if f.target == "accuracy")
    assert bad.threshold == pytest.approx(served.training["accuracy"] - 0.1)
    assert bad.details["model_version"] == 1 and "degraded" in bad.message


def test_labels_not_arrived_yet_are_counted_and_an_empty_window_fails(served: Served) -> None:
    cutoff = T0 + 8 * DAY + timedelta(hours=12)  # labels known so far
    late = served.labels.filter(pc.less(served.labels["ts"], pa.scalar(cutoff, UTC_US)))
    pq.write_table(late, served.repo / "data" / "late_labels.parquet")
    source = hw.LabelSource(hw.FileSource("data/late_labels.parquet", timestamp_field="ts"),
                            "churned")
    window, min_labels = 2 * DAY, 40
    result = check_performance(served.store, "churn", source, start=T0, end=T0 + 11 * DAY,
                               window=window, min_labels=min_labels, allowed_drop=DROPS)
    slot = window_of(served, T0, window)
    arrived = served.labels["ts"].to_numpy() < np.datetime64(cutoff.replace(tzinfo=None))
    assert len(result.windows) == 6 and result.windows[-1].end == T0 + 11 * DAY
    for i, w in enumerate(result.windows[:5]):
        rows = slot == i
        assert (w.predictions, w.labelled) == (rows.sum(), (rows & arrived).sum())
        judged = [f for f in result.findings if f.window_start == w.start]
        assert sorted(f.target for f in judged) == sorted(served.training)
        if w.labelled < min_labels:
            assert i == 4 and w.labelled > 0
            assert all(f.value is None and not f.failed and f.severity == "info"
                       and "have a label yet" in f.message for f in judged)
    assert result.unlabelled == (~arrived).sum() > 0
    empty = result.windows[-1]
    assert (empty.predictions, empty.model_version) == (0, None)
    assert [(f.check, f.value, f.failed) for f in result.failed] == [
        ("performance.predictions", None, True)]
    assert result.failed[0].window_start == T0 + 10 * DAY


@pytest.mark.parametrize(("delay", "labelled"), [(timedelta(minutes=59), 0),
                                                 (timedelta(hours=1), 1)])
def test_max_delay_includes_a_label_exactly_that_late(served: Served, delay: timedelta,
                                                      labelled: int) -> None:
    result = check_performance(served.store, "churn", start=T0, end=T0 + 10 * DAY,
                               window=10 * DAY, max_delay=delay, min_labels=1)
    assert result.windows[0].labelled == labelled * served.labels.num_rows
    assert result.to_dict()["windows"][0]["unlabelled"] == (
        (1 - labelled) * served.labels.num_rows)


def test_bad_input_is_a_data_error_naming_the_fix(served: Served) -> None:
    store, end = served.store, T0 + 10 * DAY
    with pytest.raises(DataError, match=r"start .* is not before end .*Fix"):
        check_performance(store, "churn", start=end, end=T0)
    labels = served.labels.to_pandas()
    with pytest.raises(DataError, match=r"labels has no column\(s\) \['churned'\].*Fix"):
        check_performance(store, "churn", labels.drop(columns="churned"), start=T0, end=end)
    with pytest.raises(DataError, match=r"prediction log has no column\(s\) \['account_id'\]"):
        check_performance(store, "churn", labels.rename(columns={"customer_id": "account_id"}),
                          keys=["account_id"], start=T0, end=end)
    with pytest.raises(DataError, match=r"'customer_id' is int64 in the prediction log but "
                                        r"(large_)?string in the labels"):
        check_performance(store, "churn", labels.astype({"customer_id": str}), start=T0,
                          end=end)
    unknown = labels.astype({"churned": "Int64"})
    unknown.loc[3, "churned"] = pd.NA
    with pytest.raises(DataError, match=r"1 of .* labels rows have a null 'churned'"):
        check_performance(store, "churn", unknown, start=T0, end=end)


# -- the join against a brute-force oracle ----------------------------------------------------

START = datetime(2024, 1, 1, tzinfo=UTC)
KEYS = st.tuples(st.integers(1, 3), st.sampled_from(["a", "b"]))


def oracle(predictions: list[tuple[tuple[int, str], int]],
           labels: list[tuple[tuple[int, str], int]], delay: int | None
           ) -> list[tuple[int | None, int | None]]:
    """(label value, label minute) per prediction: the first label time at or after the
    prediction's of the same key, within ``delay``; of rows tied there the last one. A
    label's value is its row number."""
    out: list[tuple[int | None, int | None]] = []
    for key, minute in predictions:
        times = [t for k, t in labels if k == key and t >= minute]
        first = min(times, default=None)
        if first is None or (delay is not None and first - minute > delay):
            out.append((None, None))
            continue
        row = max(i for i, (k, t) in enumerate(labels) if k == key and t == first)
        out.append((row, first))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(predictions=st.lists(st.tuples(KEYS, st.integers(0, 8)), max_size=25),
       labels=st.lists(st.tuples(KEYS, st.integers(0, 10)), max_size=25),
       delay=st.one_of(st.none(), st.integers(0, 4)), as_text=st.booleans())
def test_join_labels_equals_the_oracle(predictions: list[tuple[tuple[int, str], int]],
                                       labels: list[tuple[tuple[int, str], int]],
                                       delay: int | None, as_text: bool) -> None:
    def minutes(values: list[int]) -> list[datetime]:
        return [START + timedelta(minutes=m) for m in values]

    logged = pa.table({"id": [k[0] for k, _ in predictions],
                       "zone": [k[1] for k, _ in predictions],
                       "logged_at": pa.array(minutes([m for _, m in predictions]), UTC_US),
                       "prediction": list(range(len(predictions)))},
                      schema=pa.schema([("id", pa.int64()), ("zone", pa.string()),
                                        ("logged_at", UTC_US), ("prediction", pa.int64())]))
    times = minutes([m for _, m in labels])
    label_time: pa.Array = (pa.array([t.strftime("%Y-%m-%d %H:%M:%S") for t in times],
                                     pa.string()) if as_text
                            else pa.array([t.replace(tzinfo=None) for t in times],
                                          pa.timestamp("us")))  # naive: UTC
    truth = pa.table({"id": pa.array([k[0] for k, _ in labels], pa.int32()),
                      "zone": pa.array([k[1] for k, _ in labels], pa.string()),
                      "seen": label_time, "y": pa.array(range(len(labels)), pa.int64())})
    joined = join_labels(logged, truth, keys=["id", "zone"], label_column="y",
                         label_time="seen",
                         max_delay=None if delay is None else timedelta(minutes=delay))
    assert joined.column_names == ["id", "zone", "logged_at", "prediction", "label",
                                   "labelled_at"]
    assert joined["prediction"].to_pylist() == list(range(len(predictions)))
    expected = oracle(predictions, labels, delay)
    assert joined["label"].to_pylist() == [row for row, _ in expected]
    assert joined["labelled_at"].to_pylist() == [
        None if m is None else START + timedelta(minutes=m) for _, m in expected]


def test_join_refuses_all_null_keys_and_negative_delays() -> None:
    logged = pa.table({"id": pa.array([None], pa.null()),
                       "logged_at": pa.array([START], UTC_US)})
    truth = pa.table({"id": [1], "ts": pa.array([START], UTC_US), "y": [1]})
    with pytest.raises(DataError, match="key 'id' of the prediction log holds only nulls"):
        join_labels(logged, truth, keys=["id"], label_column="y", label_time="ts")
    logged = logged.set_column(0, "id", pa.array([1], pa.int64()))
    with pytest.raises(DataError, match=r"max_delay .* is negative"):
        join_labels(logged, truth, keys=["id"], label_column="y", label_time="ts",
                    max_delay=timedelta(minutes=-1))
    with pytest.raises(DataError, match="not an ISO-8601 timestamp"):
        join_labels(logged, truth.set_column(1, "ts", pa.array(["soon"])), keys=["id"],
                    label_column="y", label_time="ts")


# -- windows and degradation on plain tables --------------------------------------------------

def random_joined(rng: np.random.Generator, rows: int, *, regression: bool) -> pa.Table:
    minute = rng.integers(0, 3 * 60, size=rows)
    y = rng.normal(size=rows) if regression else rng.integers(0, 2, size=rows)
    probability = rng.uniform(size=rows)
    prediction = y + rng.normal(size=rows) if regression else (probability > 0.5).astype(int)
    label = pa.array(y, mask=rng.uniform(size=rows) < 0.2)  # a fifth not labelled yet
    return pa.table({"logged_at": pa.array([START + timedelta(minutes=int(m)) for m in minute],
                                           UTC_US),
                     "prediction": prediction, "probability": probability, "label": label})


@pytest.mark.parametrize("regression", [False, True])
def test_metrics_per_window_equal_sklearn_on_the_labelled_rows(regression: bool) -> None:
    table = random_joined(np.random.default_rng(7), 600, regression=regression)
    names = ("rmse", "mae", "r2") if regression else ("roc_auc", "accuracy", "brier", "f1")
    windows = performance_over_time(
        table, task="regression" if regression else "classification", metrics=names,
        window=timedelta(minutes=50), start=START, end=START + timedelta(hours=3),
        classes=() if regression else (0, 1), min_labels=10)
    assert [(w.start, w.end) for w in windows][-1] == (START + timedelta(minutes=150),
                                                       START + timedelta(hours=3))
    minute = (table["logged_at"].cast(pa.int64()).to_numpy() - int(START.timestamp() * 1e6)
              ) // 60_000_000
    for i, w in enumerate(windows):
        inside = (minute >= 50 * i) & (minute < 50 * (i + 1))
        done = inside & table["label"].is_valid().to_numpy(zero_copy_only=False)
        assert (w.predictions, w.labelled) == (inside.sum(), done.sum())
        y = table["label"].to_numpy(zero_copy_only=False)[done]
        prediction = table["prediction"].to_numpy()[done]
        probability = table["probability"].to_numpy()[done]
        expected = ({"rmse": math.sqrt(skm.mean_squared_error(y, prediction)),
                     "mae": skm.mean_absolute_error(y, prediction),
                     "r2": skm.r2_score(y, prediction)} if regression else
                    {"roc_auc": skm.roc_auc_score(y, probability),
                     "accuracy": skm.accuracy_score(y, prediction),
                     "brier": skm.brier_score_loss(y, probability),
                     "f1": skm.f1_score(y, prediction)})
        assert w.metrics == pytest.approx(expected, rel=1e-12)


def test_a_window_of_one_class_has_no_auc_but_its_accuracy() -> None:
    table = pa.table({"logged_at": pa.array([START] * 4, UTC_US), "prediction": [1, 0, 1, 1],
                      "probability": [0.9, 0.2, 0.6, 0.7], "label": [1, 1, 1, 1]})
    (w,) = performance_over_time(table, task="classification", metrics=["roc_auc", "accuracy"],
                                 window=DAY, start=START, end=START + DAY, min_labels=1)
    assert w.metrics == {"accuracy": 0.75}
    assert w.missing == {"roc_auc": "undefined: the window's labels hold one class (['1'])"}


def test_bad_tables_and_metrics_fail_loudly() -> None:
    table = pa.table({"logged_at": pa.array([START] * 3, UTC_US), "prediction": [0, 2, 1],
                      "probability": [0.5, 0.6, 0.7], "label": [0, 1, 2]})

    def one_day(table: pa.Table, metric: str, classes: tuple[int, ...] = ()) -> None:
        performance_over_time(table, task="classification", metrics=[metric], window=DAY,
                              start=START, end=START + DAY, classes=classes)

    with pytest.raises(DataError, match="multiclass model keeps only the predicted class"):
        one_day(table, "log_loss")
    with pytest.raises(DataError, match=r"values \['2'\] that are not classes"):
        one_day(table, "accuracy", (0, 1))
    with pytest.raises(DataError, match="the labels are string but the predictions int64"):
        one_day(table.set_column(3, "label", pa.array(["0", "1", "2"])), "accuracy")
    with pytest.raises(DefinitionError, match=r"'rmse'.* are not classification metrics"):
        one_day(table, "rmse")
    with pytest.raises(DataError, match=r"window .* is not a positive timedelta"):
        performance_over_time(table, task="classification", metrics=["accuracy"],
                              window=timedelta(0), start=START, end=START + DAY)


def window(version: int | None, values: dict[str, float], **missing: str) -> WindowMetrics:
    return WindowMetrics(START, START + DAY, 200, 150, values, missing,
                         (*values, *missing), version)


def test_degradation_holds_each_version_to_its_own_training_metrics() -> None:
    training: dict[int | None, dict[str, float]] = {
        1: {"accuracy": 0.9, "log_loss": 0.5, "rmse": 2.0},
        2: {"accuracy": 0.88, "log_loss": 0.44}}
    windows = [window(1, {"accuracy": 0.84, "log_loss": 0.54, "rmse": 2.41}),
               window(2, {"accuracy": 0.84, "log_loss": 0.54, "f1": 0.7}, roc_auc="too few"),
               WindowMetrics(START + DAY, START + 2 * DAY, 0, 0, {}, {}, ())]
    found = degradation(windows, training, subject="model:m")
    got = [(f.check, f.details.get("model_version"), f.value, f.threshold, f.failed,
            f.severity) for f in found]
    assert got == [
        ("performance.accuracy", 1, 0.84, pytest.approx(0.85), True, "warning"),
        ("performance.log_loss", 1, 0.54, pytest.approx(0.6), False, "warning"),  # 0.5 + 20%
        ("performance.rmse", 1, 2.41, pytest.approx(2.4), True, "warning"),
        ("performance.accuracy", 2, 0.84, pytest.approx(0.83), False, "warning"),
        ("performance.log_loss", 2, 0.54, pytest.approx(0.528), True, "warning"),
        ("performance.f1", 2, 0.7, None, False, "info"),  # no training f1
        ("performance.roc_auc", 2, None, None, False, "info"),
        ("performance.predictions", None, None, None, True, "warning")]
    assert "too few" in found[6].message and "no training f1" in found[5].message
    relaxed = degradation(windows[:1], training, subject="model:m",
                          allowed_drop={"accuracy": 0.07, "rmse": 0.5})
    assert [(f.threshold, f.failed) for f in relaxed] == [
        (pytest.approx(0.83), False), (pytest.approx(0.6), False), (2.5, False)]
    with pytest.raises(DefinitionError, match=r"allowed_drop\['accuracy'\]"):
        degradation(windows, training, subject="model:m", allowed_drop={"accuracy": -0.1})
    assert all(f == type(f).from_dict(f.to_dict()) for f in found)
