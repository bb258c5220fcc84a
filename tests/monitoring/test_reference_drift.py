"""Drift against a model version's training reference: plain tables with known shifts, and
check_model_drift on a trained churn model whose predictions went through the real log.

Every expected number is recomputed here by brute force from the reference JSON and the raw
values: bucket counts by one mask per bucket, PSI by its formula, the Jensen-Shannon distance
and the chi-squared test by scipy, Benjamini-Hochberg by its definition.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, chisquare

import headwater as hw
from headwater.errors import DataError, NotFoundError
from headwater.inference.log import PredictionLog, PredictionRecord
from headwater.models.reference import reference_statistics
from headwater.monitoring.findings import Finding
from headwater.monitoring.reference_drift import (
    FEATURE_CHECK,
    OTHER,
    PREDICTION_CHECK,
    check_model_drift,
    drift_against_reference,
    load_reference,
)
from headwater.testing.models import (
    CHURN_WEIGHTS,
    DEFINITIONS_FILE,
    FEATURE_NAMES,
    FEATURES_FILE,
    LABELS_FILE,
    START,
    applied_store,
    churn_repo,
)

N = 200_000
LEVELS = np.array([f"c{i:02d}" for i in range(30)])
ZIPF = (1 / np.arange(1, 31)) / (1 / np.arange(1, 31)).sum()


# -- brute force -----------------------------------------------------------------------------


def bucket_counts(stats: Mapping[str, Any], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current counts per bucket, by the module docstring's rules."""
    if stats["kind"] == "categorical":
        top = [t["value"] for t in stats["top"]]
        cur = [np.count_nonzero(values == v) for v in top]
        return (np.array([t["count"] for t in stats["top"]] + [stats["other"]]),
                np.array([*cur, len(values) - sum(cur)]))
    finite = values[np.isfinite(values)]
    edges = stats["histogram"]["edges"]
    if stats["type"].startswith("int") and stats["max"] - stats["min"] == 1:
        n = sum(stats["histogram"]["counts"])
        ones = round((stats["mean"] - stats["min"]) * n)
        a, b = (np.count_nonzero(finite == v) for v in (stats["min"], stats["max"]))
        return np.array([n - ones, ones, 0]), np.array([a, b, len(finite) - a - b])
    cur = []  # bins [e_i, e_i+1), the first open below, the last open above
    for i in range(len(edges) - 1):
        low = -np.inf if i == 0 else edges[i]
        high = np.inf if i == len(edges) - 2 else edges[i + 1]
        cur.append(np.count_nonzero((finite >= low) & ((finite < high) | (high == np.inf))))
    return np.array(stats["histogram"]["counts"]), np.array(cur)


def psi(ref: np.ndarray, cur: np.ndarray) -> float:
    p = np.maximum(ref / ref.sum(), 1e-4)
    q = np.maximum(cur / cur.sum(), 1e-4)
    return float(sum((b - a) * math.log(b / a) for a, b in zip(p, q, strict=True)))


def chi2_p(ref: np.ndarray, cur: np.ndarray) -> float:
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    assert (table.sum(axis=0) >= 5).all()  # no pooling of rare buckets in these tests
    return float(chi2_contingency(table, correction=False)[1])


def bh(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg: the adjusted p-value at rank r is min over ranks k >= r of
    p_(k) * n / k."""
    n = len(p_values)
    order = sorted(range(n), key=lambda i: p_values[i])
    rank = {column: r for r, column in enumerate(order)}
    return [min(1.0, *(p_values[order[k]] * n / (k + 1) for k in range(rank[i], n)))
            for i in range(n)]


def expected(reference: Mapping[str, Any], current: Mapping[str, np.ndarray],
             fdr: float = 0.01) -> dict[str, tuple[float, float, float, bool]]:
    """column -> (effect, p-value, adjusted p-value, drifted) at the default thresholds."""
    out = {}
    for name, values in current.items():
        stats = reference.get(name) or reference["features"][name]
        ref, cur = bucket_counts(stats, values)
        if stats["kind"] == "categorical":
            effect = float(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2))
            threshold = 0.03
        else:
            effect, threshold = psi(ref, cur), 0.005
        out[name] = (effect, chi2_p(ref, cur), threshold)
    adjusted = bh([p for _, p, _ in out.values()])
    return {name: (e, p, a, a <= fdr and e >= limit)
            for (name, (e, p, limit)), a in zip(out.items(), adjusted, strict=True)}


def by_target(findings: tuple[Finding, ...]) -> dict[str, Finding]:
    return {f.target: f for f in findings}


def assert_matches(findings: tuple[Finding, ...], want: dict[str, tuple[float, float, float,
                                                                          bool]]) -> None:
    got = by_target(findings)
    assert sorted(got) == sorted(want)
    for name, (effect, p, adjusted, drifted) in want.items():
        f = got[name]
        assert f.value == pytest.approx(effect, rel=1e-9, abs=1e-15), name
        assert f.details["p_value"] == pytest.approx(p, rel=1e-6, abs=1e-300), name
        assert f.details["p_adjusted"] == pytest.approx(adjusted, rel=1e-6, abs=1e-300)
        assert f.failed is drifted, name


# -- plain tables ----------------------------------------------------------------------------


def sample(rng: np.random.Generator, n: int, *, shifted: bool = False) -> dict[str, np.ndarray]:
    mix = 0.85 * ZIPF + 0.15 * ZIPF[::-1] if shifted else ZIPF
    return {"mean": rng.normal(0.2 if shifted else 0.0, 1.0, n),
            "scale": rng.normal(5.0, 2.6 if shifted else 2.0, n),
            "mix": rng.choice(LEVELS, n, p=mix),
            "steady": rng.normal(10.0, 3.0, n),
            "steady_mix": rng.choice(LEVELS, n, p=ZIPF),
            "flag": (rng.random(n) < 0.3).astype(np.int64),
            "count": rng.poisson(4.0, n)}


def stored(columns: Mapping[str, Any], **outputs: Any) -> dict[str, Any]:
    """Reference statistics as training stores them (through JSON)."""
    table = pa.table(dict(columns))
    return json.loads(json.dumps(reference_statistics(table, table.column_names,
                                                      outputs=outputs or None)))


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return stored(sample(np.random.default_rng(0), N))


def test_large_samples_flag_exactly_the_shifted_columns(reference: dict[str, Any]) -> None:
    current = sample(np.random.default_rng(1), N, shifted=True)
    findings = drift_against_reference(reference, pa.table(current), subject="model:m")
    want = expected(reference, current)
    assert {n for n, w in want.items() if w[3]} == {"mean", "scale", "mix"}
    assert_matches(findings, want)
    assert {f.target for f in findings if f.failed} == {"mean", "scale", "mix"}
    assert {f.check for f in findings} == {FEATURE_CHECK}
    mix = by_target(findings)["mix"]
    assert mix.threshold == 0.03 and mix.details["effect"] == "jensen_shannon"
    assert by_target(findings)["mean"].details["effect"] == "psi"
    assert by_target(findings)["flag"].details["buckets"] == ["0.0", "1.0", OTHER]
    for f in findings:
        assert Finding.from_dict(json.loads(json.dumps(f.to_dict()))) == f


def test_unchanged_columns_are_not_flagged_at_the_defaults(reference: dict[str, Any]) -> None:
    current = sample(np.random.default_rng(2), N)
    findings = drift_against_reference(reference, pa.table(current), subject="model:m")
    assert_matches(findings, expected(reference, current))
    assert [f for f in findings if f.failed] == []


def test_small_samples_give_no_false_alarm(reference: dict[str, Any]) -> None:
    for seed in range(30):
        current = sample(np.random.default_rng(100 + seed), 300)
        findings = drift_against_reference(reference, pa.table(current), subject="model:m")
        assert [f.target for f in findings if f.failed] == [], seed


def test_a_small_reference_is_a_sample_too_so_the_test_is_homogeneity() -> None:
    """4,000 training rows against 20,000 logged rows of one distribution: the test of
    homogeneity keeps its level; a goodness-of-fit test against the reference proportions
    would call most of these windows significant (the module docstring's reason)."""
    significant = naive = 0
    for seed in range(40):
        rng = np.random.default_rng([7, seed])
        train = {"x": rng.normal(size=4000)}
        (finding,) = drift_against_reference(stored(train), pa.table(
            {"x": rng.normal(size=20_000)}), subject="s")
        assert not finding.failed
        significant += finding.details["p_value"] < 0.01
        ref, cur = (np.array(finding.details[k]) for k in ("reference_counts",
                                                            "current_counts"))
        naive += chisquare(cur, ref / ref.sum() * cur.sum())[1] < 0.01
    assert significant <= 2 and naive >= 30


def test_values_outside_the_training_range_count_in_the_outer_bins() -> None:
    rng = np.random.default_rng(3)
    reference = stored({"x": rng.uniform(0, 1, 50_000)})
    few = np.concatenate([rng.uniform(0, 1, 49_997), [1.5, 2.0, 7.0]])
    many = np.concatenate([rng.uniform(0, 1, 45_000), np.full(5_000, 2.5), np.full(100, -1.0)])
    quiet, = drift_against_reference(reference, pa.table({"x": few}), subject="s")
    loud, = drift_against_reference(reference, pa.table({"x": many}), subject="s")
    low, high = reference["features"]["x"]["min"], reference["features"]["x"]["max"]
    for finding, values in ((quiet, few), (loud, many)):
        assert (finding.details["current_below"], finding.details["current_above"]) == (
            np.count_nonzero(values < low), np.count_nonzero(values > high))
        ref, cur = bucket_counts(reference["features"]["x"], values)
        assert finding.details["current_counts"] == cur.tolist()
        assert finding.details["reference_counts"] == ref.tolist()
        assert finding.details["mode"] == "bins" and finding.details["current_count"] == len(
            values)
    assert 3 <= quiet.details["current_above"] <= 5 and loud.details["current_above"] >= 5000
    assert loud.details["current_counts"][-1] >= 5000 and loud.details["current_below"] >= 100
    assert (quiet.failed, loud.failed) == (False, True)
    assert_matches((quiet,), expected(reference, {"x": few}))
    assert_matches((loud,), expected(reference, {"x": many}))


def test_a_category_unseen_in_training_goes_to_other_and_is_listed() -> None:
    rng = np.random.default_rng(4)
    levels = np.array(["a", "b", "c", "d", "e"])
    reference = stored({"k": rng.choice(levels, 50_000)})
    assert reference["features"]["k"]["other"] == 0
    one = np.concatenate([rng.choice(levels, N - 1), ["zz"]])
    lots = np.concatenate([rng.choice(levels, 47_500), np.full(2_500, "new")])
    rare, = drift_against_reference(reference, pa.table({"k": one}), subject="s")
    common, = drift_against_reference(reference, pa.table({"k": lots}), subject="s")
    encoded, = drift_against_reference(reference, pa.table(
        {"k": pa.array(lots, pa.large_string()).dictionary_encode()}), subject="s")
    assert encoded.details == common.details
    top = [t["value"] for t in reference["features"]["k"]["top"]]  # by count
    assert sorted(top) == list("abcde") and rare.details["buckets"] == [*top, OTHER]
    assert rare.details["current_counts"][-1] == 1
    assert rare.details["current_outside_reference"] == [["zz", 1]]
    assert common.details["current_outside_reference"] == [["new", 2500]]
    assert common.details["current_counts"] == [np.count_nonzero(lots == v) for v in
                                                top] + [2500]
    assert (rare.failed, common.failed) == (False, True)
    ref, cur = bucket_counts(reference["features"]["k"], lots)
    assert common.value == pytest.approx(float(jensenshannon(ref / ref.sum(), cur / cur.sum(),
                                                             base=2)), rel=1e-9)


def test_binary_and_constant_columns_are_compared_per_value() -> None:
    rng = np.random.default_rng(5)
    flags = (rng.random(50_000) < 0.3).astype(np.int64)
    reference = stored({"flag": flags, "constant": np.full(50_000, 7.0)})
    assert reference["features"]["flag"]["histogram"]["counts"] == [50_000]  # one bin
    current = {"flag": (rng.random(N) < 0.36).astype(np.int64),
               "constant": np.where(rng.random(N) < 0.1, 8.0, 7.0)}
    findings = by_target(drift_against_reference(reference, pa.table(current), subject="s"))
    flag, constant = findings["flag"], findings["constant"]
    assert flag.details["reference_counts"] == [int((flags == 0).sum()), int(flags.sum()), 0]
    assert flag.details["current_counts"] == [int((current["flag"] == 0).sum()),
                                              int(current["flag"].sum()), 0]
    assert constant.details["buckets"] == ["7.0", OTHER]
    assert constant.details["current_counts"] == [int((current["constant"] == 7).sum()),
                                                  int((current["constant"] == 8).sum())]
    assert flag.failed and constant.failed
    same = drift_against_reference(reference, pa.table(
        {"flag": (rng.random(N) < 0.3).astype(np.int64), "constant": np.full(N, 7.0)}),
        subject="s")
    assert [f.failed for f in same] == [False, False]


def test_nulls_are_counted_apart_and_are_not_drift(reference: dict[str, Any]) -> None:
    values = np.random.default_rng(6).normal(10.0, 3.0, N)
    column = pa.array(values, mask=np.arange(N) % 10 == 0)
    nan = np.where(np.arange(N) % 10 == 1, np.nan, values)
    table = pa.table({"steady": column, "mean": nan})
    findings = by_target(drift_against_reference(reference, table, subject="s",
                                                 columns=["steady", "mean"]))
    steady = findings["steady"]
    assert (steady.details["current_nulls"], steady.details["current_null_rate"]) == (
        N // 10, 0.1)
    assert steady.details["current_count"] == N - N // 10 and not steady.failed
    assert steady.details["reference_null_rate"] == 0.0
    assert findings["mean"].details["current_nulls"] == N // 10  # NaN counts as null
    kept = np.where(np.arange(N) % 10 == 0, np.nan, values)
    assert steady.value == pytest.approx(expected(reference, {"steady": kept})["steady"][0],
                                         rel=1e-9)


def test_thresholds_by_column_and_by_kind(reference: dict[str, Any]) -> None:
    current = pa.table(sample(np.random.default_rng(1), N, shifted=True))
    by_kind = by_target(drift_against_reference(reference, current, subject="s",
                                                thresholds={"numeric": 1.0}))
    assert {n for n, f in by_kind.items() if f.failed} == {"mix"}
    assert by_kind["mean"].threshold == 1.0 and by_kind["mix"].threshold == 0.03
    by_name = by_target(drift_against_reference(reference, current, subject="s",
                                                thresholds={"numeric": 1.0, "mean": 0.01}))
    assert {n for n, f in by_name.items() if f.failed} == {"mix", "mean"}
    smaller = sample(np.random.default_rng(11), 3000, shifted=True)
    strict = drift_against_reference(reference, pa.table(smaller), subject="s", fdr=1e-40)
    assert_matches(strict, expected(reference, smaller, fdr=1e-40))
    assert {f.target for f in strict if f.failed} == {"scale", "mix"}  # mean: p about 1e-28


def test_prediction_and_probability_are_drift_prediction_findings() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=20_000)
    probability = 1 / (1 + np.exp(-x))
    reference = stored({"x": x}, prediction=(probability > 0.5).astype(np.int64),
                       probability=probability)
    moved = 1 / (1 + np.exp(-(rng.normal(size=20_000) + 0.5)))
    current = {"x": rng.normal(size=20_000), "prediction": (moved > 0.5).astype(np.int64),
               "probability": moved}
    findings = drift_against_reference(reference, pa.table(current), subject="model:m")
    assert [(f.check, f.target) for f in findings] == [
        (FEATURE_CHECK, "x"), (PREDICTION_CHECK, "prediction"),
        (PREDICTION_CHECK, "probability")]
    assert_matches(findings, expected(reference, current))
    assert [f.failed for f in findings] == [False, True, True]
    only = drift_against_reference(reference, pa.table(current), subject="s", columns=["x"])
    assert [f.target for f in only] == ["x"]


def test_bad_columns_fail_loudly_as_findings(reference: dict[str, Any]) -> None:
    n = 1000
    table = pa.table({"mean": pa.array(["a"] * n), "scale": pa.nulls(n, pa.float64()),
                      "mix": pa.array([True] * n), "steady": np.full(n, np.nan),
                      "flag": np.ones(n, np.int64), "count": np.ones(n, np.int64)})
    findings = by_target(drift_against_reference(reference, table, subject="s"))
    for name, words in (("mean", "changed type from double (training) to string"),
                        ("scale", "all 1000 current values are null"),
                        ("mix", "changed type from string (training) to bool"),
                        ("steady", "none of its 1000 current values is finite"),
                        ("steady_mix", "missing from the current data")):
        f = findings[name]
        assert (f.value, f.failed) == (None, True), name
        assert words in f.message and "Fix:" in f.message and f"'{name}'" in f.message
    assert findings["flag"].value is not None and findings["flag"].failed
    timed = stored({"ts": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 3), "x": [1.0, 2, 3]})
    f = by_target(drift_against_reference(timed, pa.table({"x": [1.0, 2, 3]}),
                                          subject="s"))["ts"]
    assert (f.failed, f.severity, f.value) == (False, "info", None)
    assert "not tested" in f.message


def test_bad_input_is_a_data_error(reference: dict[str, Any]) -> None:
    table = pa.table(sample(np.random.default_rng(9), 100))
    for kwargs, words in (({"columns": ["nope"]}, "columns ['nope'] have no reference"),
                          ({"columns": "mean"}, "is one string"),
                          ({"thresholds": {"nope": 0.1}}, "thresholds= names ['nope']"),
                          ({"fdr": 0.0}, "fdr=0.0 is not within (0, 1)")):
        with pytest.raises(DataError, match=r"Fix:") as error:
            drift_against_reference(reference, table, subject="s", **kwargs)
        assert words in str(error.value)
    with pytest.raises(DataError, match=r"has no rows\. Fix: pass a window with data"):
        drift_against_reference(reference, table.slice(0, 0), subject="s")
    with pytest.raises(DataError, match="not statistics of format 1"):
        drift_against_reference({**reference, "version": 2}, table, subject="s")


# -- the store: a trained model's logged predictions -----------------------------------------

NAMES = [*FEATURE_NAMES[:-1], "model"]  # "model" is logged as input__model
CUSTOMERS, DAYS, US_DAY = 1000, 28, 86_400_000_000
QUIET, SHIFTED = START + timedelta(days=60), START + timedelta(days=61)
WINDOW_ROWS = 10_000
MOVED = {"sessions_7d": ("mean", -0.5), "days_since_login": ("mean", 0.5),
         "model": ("scale", 1.5)}
"""Shifted features (in standard deviations, or a factor): both moves raise the churn risk."""


def scale_loc(j: int) -> tuple[float, float]:
    return (j % 4 + 1) * 10.0, (j % 3) * 20.0


def iid_repo(path: Path, seed: int = 3) -> Path:
    """The churn repo with features drawn independently per day (so training, test and
    served rows share one distribution) and a feature named ``model``."""
    repo = churn_repo(path, customers=10, days=DAYS)
    text = (repo / DEFINITIONS_FILE).read_text().replace('"errors_7d"', '"model"')
    (repo / DEFINITIONS_FILE).write_text(text)
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(len(NAMES), DAYS, CUSTOMERS))
    base = np.datetime64(START.replace(tzinfo=None), "us").astype(np.int64)
    ids = np.arange(1, CUSTOMERS + 1)
    utc = pa.timestamp("us", tz="UTC")
    columns = {"customer_id": pa.array(np.tile(ids, DAYS)),
               "ts": pa.array(np.repeat(base + np.arange(DAYS) * US_DAY, CUSTOMERS)).cast(utc)}
    for j, name in enumerate(NAMES):
        scale, loc = scale_loc(j)
        columns[name] = pa.array((z[j] * scale + loc).reshape(-1))
    pq.write_table(pa.table(columns), repo / FEATURES_FILE)
    days = np.arange(0, DAYS, 7)[:, None] + rng.integers(0, 7, CUSTOMERS)[None, :]
    day, who = days[days < DAYS], np.nonzero(days < DAYS)[1]
    weights = np.zeros(len(NAMES))
    weights[:len(CHURN_WEIGHTS)] = CHURN_WEIGHTS
    logit = z[:, day, who].T @ weights - 1.0
    churned = (rng.random(len(day)) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    ts = base + day * US_DAY + rng.integers(1, 24, len(day)) * 3_600_000_000
    order = np.argsort(ts, kind="stable")
    pq.write_table(pa.table({"customer_id": pa.array(ids[who][order]),
                             "ts": pa.array(ts[order]).cast(utc),
                             "churned": pa.array(churned[order]),
                             "spend_next_30d": pa.array(np.zeros(len(day)))}),
                   repo / LABELS_FILE)
    return repo


@dataclass(frozen=True)
class Served:
    store: hw.FeatureStore
    reference: dict[str, Any]
    windows: dict[datetime, dict[str, np.ndarray]]  # what was logged, by window start


def inputs(rng: np.random.Generator, shifted: bool) -> dict[str, np.ndarray]:
    out = {}
    for j, name in enumerate(NAMES):
        scale, loc = scale_loc(j)
        z = rng.normal(size=WINDOW_ROWS)
        how, by = MOVED.get(name, ("", 0.0)) if shifted else ("", 0.0)
        out[name] = loc + scale * (z * (by if how == "scale" else 1.0)
                                   + (by if how == "mean" else 0.0))
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    store = applied_store(iid_repo(tmp_path_factory.mktemp("reference_drift") / "repo"))
    try:
        store.train("churn")
        version = store.models.get("churn:1")
        predictor = store.models.load("churn:1")
        log = PredictionLog(store.settings.predictions_path)
        windows = {}
        for start, shifted in ((QUIET, False), (SHIFTED, True)):
            values = inputs(np.random.default_rng(int(shifted)), shifted)
            table = pa.table(values)
            out = predictor.predict(table)
            windows[start] = {**values, **out}
            at = int(start.timestamp() * 1e6)
            for i in range(0, WINDOW_ROWS, 500):
                part = table.slice(i, 500)
                log.log(PredictionRecord(
                    f"{start:%d}-{i}", at + i, "churn", 1,
                    {"customer_id": list(range(i, i + 500))}, part.to_pydict(), {},
                    out["prediction"][i:i + 500], out["probability"][i:i + 500],
                    part.schema))
        log.close()
        assert log.written_rows == 2 * WINDOW_ROWS
        reference = json.loads((store.settings.artifacts_path / version.reference.uri)
                               .read_bytes())
        yield Served(store, reference, windows)
    finally:
        store.close()


def test_the_quiet_window_flags_nothing(served: Served) -> None:
    result = check_model_drift(served.store, "churn", start=QUIET, end=SHIFTED)
    assert result.rows == WINDOW_ROWS and dict(result.versions) == {1: WINDOW_ROWS}
    assert_matches(result.findings, expected(served.reference, served.windows[QUIET]))
    assert result.failed == []
    assert {f.details["model_version"] for f in result.findings} == {1}
    assert [(f.check, f.target) for f in result.findings][-2:] == [
        (PREDICTION_CHECK, "prediction"), (PREDICTION_CHECK, "probability")]


def test_the_shifted_window_flags_the_shifted_features_and_the_predictions(
        served: Served) -> None:
    end = SHIFTED + timedelta(days=1)
    result = check_model_drift(served.store, "churn", start=SHIFTED, end=end)
    assert_matches(result.findings, expected(served.reference, served.windows[SHIFTED]))
    assert {f.target for f in result.failed if f.check == FEATURE_CHECK} == set(MOVED)
    assert {f.target for f in result.failed if f.check == PREDICTION_CHECK} == {
        "prediction", "probability"}
    assert (result.window_start, result.window_end) == (SHIFTED, end)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["versions"] == {"1": WINDOW_ROWS} and len(data["findings"]) == 12
    features_only = check_model_drift(served.store, "churn", start=SHIFTED, end=end,
                                      predictions=False, thresholds={"model": 10.0})
    assert {f.target for f in features_only.failed} == set(MOVED) - {"model"}
    assert {f.check for f in features_only.findings} == {FEATURE_CHECK}


def test_the_reference_is_loaded_through_the_sha256_check(served: Served) -> None:
    assert load_reference(served.store, served.store.models.get("churn:1")) == \
        served.reference


def test_an_empty_window_and_bad_arguments(served: Served) -> None:
    start = START + timedelta(days=90)
    result = check_model_drift(served.store, "churn", start=start, end=start + timedelta(1))
    (finding,) = result.findings
    assert (finding.failed, finding.value, finding.target, result.rows) == (True, None, "", 0)
    assert "logged no prediction" in finding.message and "Fix:" in finding.message
    with pytest.raises(NotFoundError, match="no model 'nope'"):
        check_model_drift(served.store, "nope", start=start, end=start + timedelta(1))
    with pytest.raises(DataError, match="is not before end"):
        check_model_drift(served.store, "churn", start=start, end=start)
    with pytest.raises(DataError, match="thresholds= names"):
        check_model_drift(served.store, "churn", start=start, end=start + timedelta(1),
                          thresholds={"sessions": 0.1})
