"""detect_drift flags exactly the shifted columns, agrees across frame kinds, refuses bad
input by name, and writes its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import headwater as hw
from headwater.monitoring.drift import DEFAULT_THRESHOLDS

LEVELS = ("a", "b", "c", "d", "e", "f", "g", "h")
MIX = np.array([0.35, 0.2, 0.15, 0.1, 0.08, 0.06, 0.04, 0.02])


def frames(rows: int, seed: int, shifted: bool) -> tuple[pa.Table, pa.Table]:
    """Reference and current with 6 normal columns, 2 categorical, a bool and an integer.
    When ``shifted``: ``mean`` +0.1 sd, ``scale`` sd x1.25, ``mix`` 15% toward the reversed
    ranking, ``gappy`` 30% nulls and a +0.2 sd mean (the nulls alone are not drift)."""
    rng = np.random.default_rng(seed)

    def side(current: bool) -> pa.Table:
        cols: dict[str, Any] = {
            name: rng.standard_normal(rows) for name in ("mean", "scale", "gappy", "n1", "n2")}
        mix = MIX
        if current and shifted:
            cols["mean"] = cols["mean"] + 0.1
            cols["scale"] = cols["scale"] * 1.25
            cols["gappy"] = cols["gappy"] + 0.2
            mix = 0.85 * MIX + 0.15 * MIX[::-1]
        gappy = pa.array(cols["gappy"], mask=rng.random(rows) < (0.3 if current else 0.05))
        return pa.table({
            **{k: v for k, v in cols.items() if k != "gappy"}, "gappy": gappy,
            "mix": pa.array(np.array(LEVELS)[rng.choice(len(LEVELS), rows, p=mix)]),
            "same_mix": pa.array(np.array(LEVELS)[rng.choice(len(LEVELS), rows, p=MIX)]),
            "flag": pa.array(rng.random(rows) < 0.3),
            "count": pa.array(rng.poisson(3.0, rows)),
        })

    return side(False), side(True)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_exactly_the_shifted_columns_drift(seed: int) -> None:
    reference, current = frames(100_000, seed, shifted=True)
    report = hw.detect_drift(reference, current)
    assert report.drifted_columns == ["mean", "scale", "gappy", "mix"]
    gappy = report["gappy"]
    assert gappy.reference_nulls + gappy.reference_count == 100_000
    assert gappy.current_null_rate == pytest.approx(0.3, abs=0.01)
    assert report["mean"].statistic == pytest.approx(0.1, abs=0.02)  # in reference sds
    assert report["scale"].statistic == pytest.approx(0.25 * np.sqrt(2 / np.pi), abs=0.02)


@pytest.mark.parametrize("seed", [21, 22, 23, 24])
def test_unchanged_data_raises_no_alarm(seed: int) -> None:
    reference, current = frames(200_000, seed, shifted=False)
    report = hw.detect_drift(reference, current)
    assert report.drifted_columns == []
    for result in report.columns:  # below the effect thresholds by a wide margin
        assert result.statistic < DEFAULT_THRESHOLDS[result.effect] / 2


def test_kinds_tests_and_effects() -> None:
    reference, current = frames(2_000, 1, shifted=False)
    table = hw.detect_drift(reference, current).to_pandas()
    assert list(table.columns[:7]) == ["column", "kind", "test", "statistic", "threshold",
                                       "p_value", "drifted"]
    kinds = dict(zip(table["column"], zip(table["kind"], table["test"], table["effect"],
                                           strict=True), strict=True))
    assert kinds["count"] == ("numeric", "ks", "wasserstein")  # integers are numeric
    assert kinds["flag"] == ("categorical", "chi2", "jensen_shannon")
    assert kinds["mix"] == ("categorical", "chi2", "jensen_shannon")


def test_thresholds_and_effects_by_column_and_kind() -> None:
    reference, current = frames(50_000, 5, shifted=True)
    report = hw.detect_drift(reference, current, ["mean", "scale", "mix"],
                             thresholds={"numeric": 0.15, "mix": 0.5},
                             effects={"categorical": "psi"})
    assert report.drifted_columns == ["scale"]  # mean (0.1) < 0.15; mix below 0.5
    assert report["mix"].effect == "psi" and report["mix"].threshold == 0.5
    psi = hw.detect_drift(reference, current, ["mean"], effects={"mean": "psi"})
    assert psi["mean"].effect == "psi" and psi["mean"].threshold == DEFAULT_THRESHOLDS["psi"]
    assert psi.drifted_columns == ["mean"]


def test_small_samples_need_significance() -> None:
    rng = np.random.default_rng(4)
    reference = pa.table({"x": rng.standard_normal(30)})
    current = pa.table({"x": rng.standard_normal(30) + 0.3})  # large effect, weak evidence
    report = hw.detect_drift(reference, current)
    assert report["x"].statistic > DEFAULT_THRESHOLDS["wasserstein"]
    assert report["x"].p_adjusted > 0.01 and report.drifted_columns == []


def test_pandas_polars_and_arrow_give_the_same_report() -> None:
    pl = pytest.importorskip("polars")
    reference, current = frames(5_000, 7, shifted=True)
    arrow = hw.detect_drift(reference, current).to_dict()
    pandas = hw.detect_drift(reference.to_pandas(), current.to_pandas()).to_dict()
    polars = hw.detect_drift(pl.from_arrow(reference), pl.from_arrow(current)).to_dict()
    assert arrow == pandas == polars
    assert arrow["drifted_columns"] != []


def test_dictionary_columns_with_different_dictionaries() -> None:
    reference = pa.table({"c": pa.array(["x", "y", "y", "z"] * 500).dictionary_encode()})
    current = pa.table({"c": pa.array(["z", "w", "y", "x"] * 500).dictionary_encode()})
    result = hw.detect_drift(reference, current)["c"]
    assert result.kind == "categorical"
    assert result.reference_count == result.current_count == 2000
    assert result.drifted  # w is new, y halved


@pytest.mark.parametrize(("reference", "current", "columns", "message"), [
    ({"x": []}, {"x": [1.0]}, None, "reference data has no rows"),
    ({"x": [1.0]}, {"x": []}, None, "current data has no rows"),
    ({"x": [None, None]}, {"x": [1.0]}, None, "column 'x' has no values in the reference"),
    ({"x": [1.0, 2.0]}, {"x": [float("nan"), None]}, None,
     "column 'x' has no values in the current"),
    ({"x": [1.0, 2.0]}, {"x": ["a", "b"]}, None, "column 'x' changed type"),
    ({"x": [True, False]}, {"x": ["a", "b"]}, None, "column 'x' changed type"),
    ({"x": [1.0, 2.0]}, {"y": [1.0]}, None, "column 'x' is in the reference data but not"),
    ({"x": [1.0, 2.0]}, {"x": [1.0]}, ["nope"], "['nope'] named in columns="),
    ({"x": [1.0, float("inf")]}, {"x": [1.0]}, None, "column 'x' holds infinite values"),
])
def test_bad_input_fails_loudly(reference: dict[str, list[Any]], current: dict[str, list[Any]],
                                columns: list[str] | None, message: str) -> None:
    ref = pa.table({k: pa.array(v, type=None if v else pa.float64())
                    for k, v in reference.items()})
    cur = pa.table({k: pa.array(v, type=None if v else pa.float64())
                    for k, v in current.items()})
    with pytest.raises(hw.DataError, match="Fix:") as error:
        hw.detect_drift(ref, cur, columns)
    assert message in str(error.value)


def test_bad_options_fail_loudly() -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(hw.DataError, match="thresholds= names \\['y'\\]"):
        hw.detect_drift(table, table, thresholds={"y": 0.1})
    with pytest.raises(hw.DataError, match="effect 'chi2' for numeric column 'x'"):
        hw.detect_drift(table, table, effects={"x": "chi2"})
    with pytest.raises(hw.DataError, match="fdr=0"):
        hw.detect_drift(table, table, fdr=0)


def test_untestable_types_are_skipped_unless_named() -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0], "ts": pa.array([1, 2, 3], pa.timestamp("us"))})
    report = hw.detect_drift(table, table)
    assert [c.column for c in report.columns] == ["x"] and report.skipped == ("ts",)
    with pytest.raises(hw.DataError, match="column 'ts' has type timestamp"):
        hw.detect_drift(table, table, ["ts"])


def test_to_html_and_to_dict(tmp_path: Path) -> None:
    reference, current = frames(5_000, 8, shifted=True)
    report = hw.detect_drift(reference, current)
    path = report.to_html(tmp_path / "drift.html")
    text = path.read_text()
    assert "<table>" in text and text.count("<tr") == len(report.columns) + 1
    assert text.count('class="drifted"') == len(report.drifted_columns) > 0
    assert "http" not in text and "<script" not in text  # self-contained
    data = json.loads(json.dumps(report.to_dict()))
    assert data["drifted_columns"] == report.drifted_columns
    assert [c["column"] for c in data["columns"]] == [c.column for c in report.columns]
