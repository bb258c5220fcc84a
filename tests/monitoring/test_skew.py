"""Training/serving skew: compare_served against a brute-force comparison, and check_skew on
a real repo whose predictions went through ``/predict`` and its log.

The repo is the churn repo of tests.inference (data up to today, ttl 3 days), trained and
materialized up to now. One batch of requests is served from an up-to-date online store;
then rows are pushed online only for a few customers, some features changed, one set to
null, and a second batch is served. The expected mismatches of each feature are counted
row by row from the pushed values and the offline data file.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from headwater.errors import DataError, NotFoundError
from headwater.inference.log import PredictionLog, PredictionRecord
from headwater.monitoring.compare import DEFAULT_TOLERANCE, Tolerance, compare_served
from headwater.monitoring.findings import Finding
from headwater.monitoring.skew import CHECK, check_skew, logged_names
from headwater.serving.http import create_app
from headwater.store import FeatureStore
from headwater.testing.models import FEATURE_NAMES, FEATURES_FILE, applied_store
from tests.inference.conftest import CUSTOMERS, recent_churn_repo
from tests.models.conftest import offer_labels, offer_model

UTC_US = pa.timestamp("us", tz="UTC")


# -- compare_served ------------------------------------------------------------------------


def close(s: Any, o: Any, tol: Tolerance = DEFAULT_TOLERANCE) -> bool:
    """The brute-force rule of headwater.monitoring.compare's docstring, value by value."""
    if s is None or o is None:
        return s is None and o is None
    if isinstance(s, list):
        return len(s) == len(o) and all(close(x, y, tol) for x, y in zip(s, o, strict=True))
    if isinstance(s, float) or isinstance(o, float):
        if math.isnan(s) or math.isnan(o):
            return math.isnan(s) and math.isnan(o)
        return s == o or (math.isfinite(s) and math.isfinite(o) and abs(s - o) <= (
            tol.absolute + tol.relative * max(abs(s), abs(o))))
    return bool(s == o)


def tables(served: list[Any], offline: list[Any], kind: pa.DataType,
           offline_kind: pa.DataType | None = None) -> tuple[pa.Table, pa.Table]:
    ids = list(range(len(served)))
    return (pa.table({"id": ids, "x": pa.array(served, kind)}),
            pa.table({"id": ids, "x": pa.array(offline, offline_kind or kind)}))


def test_float32_round_trips_and_summation_order_are_not_skew() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(scale=1e6, size=500), rng.normal(size=500),
                             [0.0, 1e-300, -1e-12, 3.0e38]])
    served, offline = tables(values.astype(np.float32).tolist(), values.tolist(),
                             pa.float32(), pa.float64())
    result = compare_served(served, offline, keys=["id"], features=["x"])["x"]
    assert (result.compared, result.mismatches, result.mismatch_rate) == (len(values), 0, 0.0)
    rows = rng.normal(size=(200, 50))
    served, offline = tables([float(sum(r)) for r in rows],
                             [float(sum(sorted(r, reverse=True))) for r in rows], pa.float64())
    assert compare_served(served, offline, keys=[], features=["x"])["x"].mismatches == 0


@pytest.mark.parametrize("tol", [DEFAULT_TOLERANCE, Tolerance(relative=0.0, absolute=0.5),
                                 Tolerance(relative=1e-3, absolute=0.0)])
def test_numbers_match_the_brute_force_rule(tol: Tolerance) -> None:
    rng = random.Random(7)
    base = [rng.choice([0.0, 1.0, -2.5, 1e-9, 1e12, math.inf, -math.inf, math.nan, None])
            for _ in range(400)]
    noise = [rng.choice([0.0, 1e-10, 1e-7, 1e-4, 0.3, 2.0]) for _ in base]
    other = [None if rng.random() < 0.05 else (
        b if b is None or not math.isfinite(b) else b * (1 + n) + rng.choice([0, n]))
        for b, n in zip(base, noise, strict=True)]
    served, offline = tables(base, other, pa.float64())
    result = compare_served(served, offline, keys=["id"], features=["x"], tolerance=tol,
                            examples=3)["x"]
    wrong = [i for i, (s, o) in enumerate(zip(base, other, strict=True))
             if not close(s, o, tol)]
    assert result.mismatches == len(wrong) > 0
    assert result.missing_online == sum(s is None and o is not None
                                        for s, o in zip(base, other, strict=True))
    assert result.missing_offline == sum(s is not None and o is None
                                         for s, o in zip(base, other, strict=True))
    assert result.both_null == sum(s is None and o is None
                                   for s, o in zip(base, other, strict=True))
    assert [e.keys["id"] for e in result.examples] == wrong[:3]
    assert all(close(e.served, base[e.keys["id"]], Tolerance(0.0, 0.0))
               and close(e.offline, other[e.keys["id"]], Tolerance(0.0, 0.0))
               for e in result.examples)


def test_integers_exact_and_against_floats() -> None:
    big = 2**62 + 1
    served, offline = tables([1, 2, big, None, 5], [1, 3, big - 1, None, None], pa.int64())
    result = compare_served(served, offline, keys=["id"], features=["x"])["x"]
    assert (result.mismatches, result.missing_offline, result.both_null) == (3, 1, 1)
    served, offline = tables([1, 2, 3], [1.0, 2.0000000001, 3.5], pa.int32(), pa.float64())
    assert compare_served(served, offline, keys=["id"], features=["x"])["x"].mismatches == 1


def test_strings_bools_and_timestamps_exact() -> None:
    served, offline = tables(["a", "b", None, "c"], ["a", "B", None, None], pa.string(),
                             pa.large_string())
    result = compare_served(served, offline, keys=["id"], features=["x"])["x"]
    assert (result.mismatches, result.missing_offline) == (2, 1)
    served, offline = tables([True, False, None], [True, True, False], pa.bool_())
    result = compare_served(served, offline, keys=["id"], features=["x"])["x"]
    assert (result.mismatches, result.missing_online) == (2, 1)
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    served = pa.table({"id": [0, 1], "x": pa.array([at, at], UTC_US)})
    offline = pa.table({"id": [0, 1], "x": pa.array(
        [at.replace(tzinfo=None), at.replace(tzinfo=None) + timedelta(microseconds=1)],
        pa.timestamp("ns"))})
    assert compare_served(served, offline, keys=["id"], features=["x"])["x"].mismatches == 1


def test_lists_element_wise() -> None:
    served = [[1.0, 2.0], [1.0, 2.0], [1.0], None, [], [None, 1.0], [[1.0], [2.0]], [1.0]]
    offline = [[1.0, 2.0 + 1e-12], [1.0, 2.5], [1.0, 1.0], None, [], [None, 1.0], None, None]
    flat = pa.list_(pa.float64())
    s, o = tables(served[:6], offline[:6], flat, pa.list_(pa.float32()))
    result = compare_served(s, o, keys=["id"], features=["x"])["x"]
    assert result.mismatches == sum(not close(a, b) for a, b in zip(served[:6], offline[:6],
                                                                    strict=True)) == 2
    nested = pa.list_(pa.list_(pa.float64()))
    s, o = tables([[[1.0], [2.0]], [[1.0], [2.0]], None],
                  [[[1.0], [2.0 * (1 + 1e-9)]], [[1.0], [2.1]], [[1.0]]], nested)
    result = compare_served(s, o, keys=["id"], features=["x"])["x"]
    assert (result.mismatches, result.missing_online) == (2, 1)


def test_rows_are_matched_on_keys_by_occurrence_and_unmatched_rows_fail() -> None:
    served = pa.table({"k": [1, 2, 1, 3, 1], "t": [5, 5, 5, 6, 5], "x": [10, 20, 11, 30, 12]})
    # the same rows shuffled; key (1, 5) three times, in the same relative order
    order = [3, 0, 1, 2, 4]
    offline = served.take(order).set_column(2, "x", pa.array([30, 10, 20, 99, 12]))
    result = compare_served(served, offline, keys=["k", "t"], features=["x"])["x"]
    assert result.mismatches == 1
    assert [(e.keys, e.served, e.offline) for e in result.examples] == [
        ({"k": 1, "t": 5}, 11, 99)]
    with pytest.raises(DataError, match="no recomputed row"):
        compare_served(served, offline.slice(0, 4), keys=["k", "t"], features=["x"])
    with pytest.raises(DataError, match="no recomputed row"):
        compare_served(served, offline.set_column(0, "k", pa.array([3, 1, 2, 1, 4])),
                       keys=["k", "t"], features=["x"])
    with pytest.raises(DataError, match=r"no column\(s\) \['y'\]"):
        compare_served(served, offline, keys=["k"], features=["y"])


def test_a_type_change_is_a_data_error() -> None:
    served, offline = tables(["1", "2"], [1.0, 2.0], pa.string(), pa.float64())
    with pytest.raises(DataError, match="feature 'x': served values are string, offline "
                                        "values are double"):
        compare_served(served, offline, keys=["id"], features=["x"])
    with pytest.raises(DataError, match=r"Tolerance\.relative"):
        Tolerance(relative=-1.0)


def test_pandas_frames_are_compared_too() -> None:
    import pandas as pd

    served = pd.DataFrame({"id": [1, 2, 3], "x": ["a", "b", "c"]})
    offline = pa.table({"id": [3, 2, 1], "x": ["c", "b", "z"]})
    result = compare_served(served, offline, keys=["id"], features=["x"])["x"]
    assert (result.mismatches, [(e.keys, e.served, e.offline) for e in result.examples]) == (
        1, [({"id": 1}, "a", "z")])


def test_logged_names_follow_the_log() -> None:
    groups = [["customer_id", "model"], ["prediction", "x"], ["model", "y"]]
    names = logged_names(groups)
    assert names == [
        {"customer_id": "customer_id", "model": "input__model"},
        {"prediction": "input__prediction", "x": "x"},
        {"model": "input__input__model", "y": "y"}]
    record = PredictionRecord("r1", 0, "m", 1, *({n: [1] for n in g} for g in groups),
                              predictions=np.array([0]), probabilities=None)
    assert record.to_arrow().column_names == [
        "request_id", "logged_at", "model", "model_version",
        *(c for group in names for c in group.values()), "prediction"]


# -- check_skew on a served repo -----------------------------------------------------------

IDS = [*range(1, CUSTOMERS + 1), 10_000]  # and one customer never seen: null both sides
PUSHED = range(1, 7)
NULLED = (6, "spend_30d")
OFFER = "offer_churn"  # an on-demand feature over spend_30d and the request's discount
OFFER_FEATURES = [*FEATURE_NAMES, "spend_after_discount"]


@dataclass(frozen=True)
class Served:
    store: FeatureStore
    first: tuple[datetime, datetime]
    second: tuple[datetime, datetime]
    third: tuple[datetime, datetime]
    sent: dict[str, list[int]]
    """Model -> the customers sent in the second window, one per logged row."""
    pushed: dict[int, dict[str, Any]]
    offline: dict[int, dict[str, Any]]


def serve(store: FeatureStore, batches: list[list[int]]) -> dict[str, list[int]]:
    """POST each batch to /predict for churn and for offer_churn (a discount per row);
    the server's shutdown writes the log. Returns the customers sent per model."""
    log = PredictionLog(store.settings.predictions_path)
    sent: dict[str, list[int]] = {"churn": [], OFFER: []}
    with TestClient(create_app(store, api_keys=None, prediction_log=log)) as client:
        for ids in batches:
            for model, request in (("churn", None),
                                   (OFFER, [{"discount": (i % 5) / 10} for i in ids])):
                answer = client.post("/predict", json={
                    "model": model, "entities": [{"customer_id": i} for i in ids],
                    **({"request": request} if request else {})})
                assert answer.status_code == 200, answer.text
                sent[model].extend(ids)
    return sent


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    repo, _ = recent_churn_repo(tmp_path_factory.mktemp("skew") / "repo")
    store = applied_store(repo)
    try:
        store.apply(offer_model(store, offer_labels(repo)))
        for model in ("churn", OFFER):
            store.promote(model, store.train(model).version)
        now = datetime.now(UTC)
        store.materialize(now - timedelta(days=60), now)
        latest = {}  # brute force: each customer's latest offline row (all are before now)
        for row in pq.read_table(repo / FEATURES_FILE).to_pylist():
            if row["customer_id"] not in latest or row["ts"] > latest[row["customer_id"]]["ts"]:
                latest[row["customer_id"]] = row
        first_start = datetime.now(UTC)
        serve(store, [IDS[:50], IDS[50:]])
        first_end = datetime.now(UTC)
        midnight = first_end.replace(hour=0, minute=0, second=0, microsecond=0)
        pushed = {}
        for c in PUSHED:  # customer c changes feature j when (c + j) % 3 == 0
            row = {**latest[c], "ts": midnight + (first_end - midnight) / 2}
            for j, name in enumerate(FEATURE_NAMES):
                if (c + j) % 3 == 0:
                    row[name] += 1.0
            if c == NULLED[0]:
                row[NULLED[1]] = None
            pushed[c] = row
        store.push("customer_stats", list(pushed.values()), to="online")
        sent = serve(store, [[1, 1, 2, 3], IDS[3:70], IDS[70:]])  # customer 1 twice
        second_end = datetime.now(UTC)
        serve(store, [[10_000, 10_000]])  # nobody known: every value null
        yield Served(store, (first_start, first_end), (first_end, second_end),
                     (second_end, datetime.now(UTC)), sent, pushed, latest)
    finally:
        store.close()


@pytest.mark.parametrize(("model", "features"), [("churn", list(FEATURE_NAMES)),
                                               (OFFER, OFFER_FEATURES)])
def test_a_consistent_store_has_no_skew(served: Served, model: str,
                                        features: list[str]) -> None:
    start, end = served.first
    result = check_skew(served.store, model, start=start, end=end)
    assert result.rows_logged == result.rows_compared == len(IDS)
    assert result.versions == (1,)
    assert list(result.features) == features  # the request field 'discount' is not compared
    for name in features:
        skew = result.features[name]
        assert (skew.compared, skew.mismatches, skew.missing_online, skew.missing_offline,
                skew.both_null) == (len(IDS), 0, 0, 0, 1), name
    assert [f.target for f in result.findings] == features
    assert all(f.check == CHECK and f.subject == f"model:{model}" and f.value == 0.0
               and not f.failed and f.window_start == start for f in result.findings)
    assert result.failed == []


def expected_value(row: dict[str, Any], name: str) -> Any:
    """A feature of a customer's row, the on-demand one computed as its function does."""
    if name != "spend_after_discount":
        return row[name]
    spend = row["spend_30d"]
    return None if spend is None else spend * (1.0 - (row["customer_id"] % 5) / 10)


@pytest.mark.parametrize(("model", "features"), [("churn", list(FEATURE_NAMES)),
                                               (OFFER, OFFER_FEATURES)])
def test_online_only_rows_are_counted_exactly(served: Served, model: str,
                                              features: list[str]) -> None:
    start, end = served.second
    result = check_skew(served.store, model, start=start, end=end, examples=100)
    rows = served.sent[model]
    assert result.rows_logged == result.rows_compared == len(rows)
    for name in features:
        expected, nulls = [], 0
        for c in rows:  # brute force: what was served against the offline latest row
            if c not in served.pushed:
                continue
            online = expected_value(served.pushed[c], name)
            offline = expected_value(served.offline[c], name)
            if online != offline:
                expected.append(c)
                nulls += online is None
        skew = result.features[name]
        assert (skew.compared, skew.mismatches, skew.missing_online, skew.missing_offline) == (
            len(rows), len(expected), nulls, 0), name
        assert skew.mismatch_rate == len(expected) / len(rows)
        assert [e.keys["customer_id"] for e in skew.examples] == expected
        assert all(close(e.served, expected_value(served.pushed[e.keys["customer_id"]], name))
                   and close(e.offline,
                             expected_value(served.offline[e.keys["customer_id"]], name))
                   for e in skew.examples)
        finding = next(f for f in result.findings if f.target == name)
        assert finding.value == len(expected) / len(rows)
        assert finding.failed == (len(expected) / len(rows) > 0.01), name
        assert finding.details["mismatches"] == len(expected)
    assert result.features[NULLED[1]].missing_online == 1
    assert result.failed  # some features changed for more than 1% of the rows
    lenient = check_skew(served.store, model, start=start, end=end, max_mismatch_rate=0.5)
    assert lenient.failed == []
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["features"]["sessions_7d"]["compared"] == len(rows)
    assert [Finding.from_dict(f) for f in data["findings"]] == list(result.findings)


def test_a_window_of_only_unknown_entities_fails_every_feature(served: Served) -> None:
    start, end = served.third
    result = check_skew(served.store, "churn", start=start, end=end)
    assert result.rows_logged == 2
    assert [(f.target, f.value, f.failed) for f in result.findings] == [
        (name, 0.0, True) for name in FEATURE_NAMES]
    assert all("proves nothing" in f.message for f in result.findings)
    assert all(result.features[n].both_null == 2 for n in FEATURE_NAMES)


def test_sampling_is_seeded_and_bounded(served: Served) -> None:
    start, end = served.second
    first = check_skew(served.store, "churn", start=start, end=end, sample=40, seed=3)
    again = check_skew(served.store, "churn", start=start, end=end, sample=40, seed=3)
    whole = check_skew(served.store, "churn", start=start, end=end, sample=None)
    assert first.rows_compared == 40 and first.rows_logged == len(served.sent["churn"])
    assert first.features == again.features
    for name in FEATURE_NAMES:
        assert first.features[name].compared == 40
        assert first.features[name].mismatches <= whole.features[name].mismatches
    big = check_skew(served.store, "churn", start=start, end=end, sample=10_000)
    assert big.features == check_skew(served.store, "churn", start=start, end=end,
                                      sample=None).features


def test_empty_window_unknown_model_and_bad_arguments(served: Served) -> None:
    start = served.first[0] - timedelta(days=2)
    result = check_skew(served.store, "churn", start=start, end=start + timedelta(hours=1))
    assert result.rows_logged == 0 and result.features == {}
    assert [(f.target, f.value, f.failed) for f in result.findings] == [("", None, True)]
    assert "logged no prediction" in result.findings[0].message
    with pytest.raises(NotFoundError, match="no model 'nope'"):
        check_skew(served.store, "nope", start=start, end=served.second[1])
    with pytest.raises(DataError, match="not before end"):
        check_skew(served.store, "churn", start=served.second[1], end=start)
    with pytest.raises(DataError, match="sample"):
        check_skew(served.store, "churn", start=start, end=served.second[1], sample=0)
    with pytest.raises(DataError, match="max_mismatch_rate"):
        check_skew(served.store, "churn", start=start, end=served.second[1],
                   max_mismatch_rate=2.0)
