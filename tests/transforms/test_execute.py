"""run_on_demand: one batch through a view's function, checked and typed, in both modes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import headwater as hw
from headwater.errors import DataError
from headwater.transforms.execute import run_on_demand

REQUEST = hw.RequestSource("request", schema=[hw.Field("amount", hw.Float64)])
INPUTS = pa.table({"amount": [1.0, 2.0, None], "mean": [2.0, 0.5, 1.0]})


def view(mode: str = "pandas", schema: Any = None) -> hw.OnDemandFeatureView:
    return hw.OnDemandFeatureView(
        name="ratio", sources=[REQUEST], mode=mode, function_source="def f(b): ...\n",
        schema=schema or [hw.Field("ratio", hw.Float64), hw.Field("big", hw.Bool)])


def test_pandas_and_arrow_modes_give_the_same_typed_columns() -> None:
    def with_pandas(batch: pd.DataFrame) -> pd.DataFrame:
        assert isinstance(batch, pd.DataFrame)
        return pd.DataFrame({"big": batch["amount"] > 1.5,
                             "ratio": batch["amount"] / batch["mean"]})

    def with_arrow(batch: pa.Table) -> pa.Table:
        assert isinstance(batch, pa.Table)
        return pa.table({"ratio": pc.divide(batch["amount"], batch["mean"]),
                         "big": pc.greater(batch["amount"], 1.5)})

    from_pandas = run_on_demand(view("pandas"), with_pandas, INPUTS)
    from_arrow = run_on_demand(view("arrow"), with_arrow, INPUTS)
    assert list(from_pandas) == ["ratio", "big"]  # schema order, whatever the result's order
    assert from_pandas["ratio"].to_pylist() == [0.5, 4.0, None]  # pandas NaN is null
    assert from_arrow["ratio"].to_pylist() == [0.5, 4.0, None]
    assert from_pandas["big"].type == from_arrow["big"].type == pa.bool_()
    assert from_arrow["big"].to_pylist() == [False, True, None]
    assert from_pandas["big"].to_pylist() == [False, True, False]  # pandas: NaN > x is False


def test_values_are_cast_to_the_declared_dtypes_when_nothing_is_lost() -> None:
    schema = [hw.Field("n", hw.Int64), hw.Field("x", hw.Float64), hw.Field("at", hw.Timestamp),
              hw.Field("none", hw.String)]

    def function(batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"n": [1.0, 2.0, None], "x": [1, 2, 3],
                             "at": pd.to_datetime(["2024-01-01"] * 3),
                             "none": [None, None, None]})

    out = run_on_demand(view(schema=schema), function, INPUTS)
    assert out["n"].type == pa.int64() and out["n"].to_pylist() == [1, 2, None]
    assert out["x"].type == pa.float64() and out["x"].to_pylist() == [1.0, 2.0, 3.0]
    assert out["at"].type == pa.timestamp("us", "UTC")
    assert out["at"].to_pylist()[0] == datetime(2024, 1, 1, tzinfo=UTC)  # naive is UTC
    assert out["none"].type == pa.string() and out["none"].null_count == 3


def test_an_exception_in_the_function_is_a_data_error_chained_to_it() -> None:
    def broken(batch: pd.DataFrame) -> pd.DataFrame:
        raise KeyError("amount_mean")

    with pytest.raises(DataError, match="OnDemandFeatureView 'ratio': its function raised "
                                        "KeyError") as info:
        run_on_demand(view(), broken, INPUTS)
    assert isinstance(info.value.__cause__, KeyError)


BAD_RESULTS = [
    ("pandas", lambda b: {"ratio": [1.0] * 3, "big": [True] * 3}, "not a pandas DataFrame"),
    ("arrow", lambda b: b.to_pandas(), "not a pyarrow Table"),
    ("pandas", lambda b: pd.DataFrame({"ratio": [1.0] * 3}), r"lacks column\(s\) \['big'\]"),
    ("pandas", lambda b: pd.DataFrame({"ratio": [1.0] * 3, "big": [True] * 3, "x": [1] * 3}),
     r"column\(s\) \['x'\] that are not in the schema"),
    ("pandas", lambda b: pd.DataFrame({"ratio": [1.0] * 2, "big": [True] * 2}),
     "column 'ratio' of the function's result has 2 rows for 3 input rows"),
    ("pandas", lambda b: pd.DataFrame({"ratio": ["a", "b", "c"], "big": [True] * 3}),
     "column 'ratio' in the function's result holds (large_)?string, which is not Float64"),
    ("pandas", lambda b: pd.DataFrame({"ratio": [1.0, "b", 2.0], "big": [True] * 3}),
     "column 'ratio' of the function's result mixes types"),
    ("arrow", lambda b: pa.table({"ratio": [1.0] * 3, "big": [1, 0, 1]}),
     "column 'big' in the function's result holds int64, which is not Bool"),
    ("arrow", lambda b: pa.table([pa.array([1.0] * 3)] * 2, names=["ratio", "ratio"]),
     r"column\(s\) \['ratio'\] more than once"),
]


@pytest.mark.parametrize(("mode", "function", "message"), BAD_RESULTS)
def test_a_result_that_is_not_the_schema_is_a_data_error_naming_view_column_and_fix(
        mode: str, function: Any, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        run_on_demand(view(mode), function, INPUTS)
    assert "OnDemandFeatureView 'ratio'" in str(info.value)
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize(("dtype", "values", "problem"), [
    (hw.Int64, [1.5, 2.0, 3.0], "truncated"),
    (hw.Int32, [1, 2, 2**40], ""),
    (hw.Timestamp, pd.to_datetime(["2024-01-01 00:00:00.000000001"] * 3, utc=True), ""),
])
def test_values_that_would_lose_information_are_refused(dtype: Any, values: Any,
                                                        problem: str) -> None:
    def function(batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"v": values})

    with pytest.raises(DataError, match=f"column 'v' .* do not fit .*{problem}"):
        run_on_demand(view(schema=[hw.Field("v", dtype)]), function, INPUTS)
