"""Running one on-demand view over one batch, and checking what its function returns.

The function gets the input columns (the source views' features by feature name, then the
request fields) as a pandas DataFrame (``mode="pandas"``) or a pyarrow Table
(``mode="arrow"``), and must return the same kind of batch with exactly the view's schema
columns and one row per input row. Each returned column is cast to its declared dtype; a
cast that would lose information (a fraction into an integer, an integer out of range, a
string into a number) is a DataError naming the view, the column and the fix, never a
silent null. In pandas mode NaN is a missing value and becomes null, as pandas means it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from headwater.definitions import Field, OnDemandFeatureView
from headwater.errors import DataError, DefinitionError
from headwater.types import DType, from_arrow

if TYPE_CHECKING:
    import pyarrow as pa


def run_on_demand(view: OnDemandFeatureView, function: Callable[..., Any],
                  inputs: pa.Table) -> dict[str, pa.Array]:
    """Run ``function`` (the callable of ``view``) over ``inputs``; returns one array per
    field of ``view.schema``, typed by its dtype, keyed by feature name.

    Raises DataError naming the view when the function raises (chained to the original
    exception) or returns something other than a batch of the schema's columns with one
    row per input row, or values that do not fit the declared dtypes."""
    me = f"OnDemandFeatureView '{view.name}'"
    batch = _to_batch(me, view.mode, inputs)
    try:
        result = function(batch)
    except Exception as exc:  # user code may raise anything: name the view, keep the cause
        raise DataError(f"{me}: its function raised {type(exc).__name__}: {exc}. Fix: make "
                        "the function handle these inputs (see the chained traceback)") from exc
    columns = _columns(me, view.mode, result)
    names = [f.name for f in view.schema]
    missing = [n for n in names if n not in columns]
    extra = [n for n in columns if n not in names]
    if missing or extra:
        problem = (f"lacks column(s) {missing}" if missing else
                   f"has column(s) {extra} that are not in the schema")
        raise DataError(f"{me}: the function's result {problem}. Fix: return exactly the "
                        f"schema's columns {names}")
    out = {}
    for field in view.schema:
        values = columns[field.name]
        if len(values) != inputs.num_rows:
            raise DataError(f"{me}: column '{field.name}' of the function's result has "
                            f"{len(values)} rows for {inputs.num_rows} input rows. Fix: return "
                            "one row per input row, in input order")
        out[field.name] = cast_column(values, field, me, "the function's result")
    return out


def cast_column(values: pa.Array | pa.ChunkedArray, field: Field, owner: str,
                where: str) -> pa.Array:
    """``values`` as ``field``'s dtype; DataError naming ``owner``, the column and the fix
    when the values are of another kind (text for a number) or do not fit (a fraction for
    an integer, a value out of range, a timestamp finer than microseconds)."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    target = field.dtype.to_arrow()
    if values.type == target:
        return values
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), target)
    actual = from_arrow(values.type)
    if actual is None or not _same_kind(field.dtype, actual):
        raise DataError(f"{owner}: column '{field.name}' in {where} holds {values.type}, "
                        f"which is not {field.dtype!r}. Fix: return {field.dtype!r} values, "
                        "or declare the field with the type returned")
    try:
        return values.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"{owner}: column '{field.name}' in {where}: values of type "
                        f"{values.type} do not fit {field.dtype!r} without loss ({exc}). Fix: "
                        "return values that fit, or declare a wider dtype") from exc


def _same_kind(declared: DType, actual: DType) -> bool:
    """Numbers cast among numbers (checked for loss); other kinds only to themselves."""
    if declared.inner is not None or actual.inner is not None:
        return (declared.inner is not None and actual.inner is not None
                and _same_kind(declared.inner, actual.inner))
    if declared.is_numeric:
        return actual.is_numeric
    return declared.name == actual.name


def _to_batch(me: str, mode: str, inputs: pa.Table) -> Any:
    if mode == "arrow":
        return inputs
    try:
        import pandas  # noqa: F401  only to say clearly what is missing
    except ImportError as exc:
        raise DefinitionError(me, "mode", "mode 'pandas' needs pandas, which is not installed",
                              "pip install 'headwater[pandas]', or use mode='arrow'") from exc
    return inputs.to_pandas()


def _columns(me: str, mode: str, result: Any) -> dict[str, pa.Array | pa.ChunkedArray]:
    """The result's columns by name, as Arrow."""
    import pyarrow as pa

    if mode == "arrow":
        if isinstance(result, pa.RecordBatch):
            result = pa.Table.from_batches([result])
        if not isinstance(result, pa.Table):
            raise DataError(f"{me}: the function returned {type(result).__name__}, not a "
                            "pyarrow Table. Fix: return pa.table({...}) with the schema's "
                            "columns (mode='arrow')")
        names: Sequence[str] = result.column_names
        _check_unique(me, names)
        return {name: result.column(name) for name in names}
    import pandas as pd

    if not isinstance(result, pd.DataFrame):
        raise DataError(f"{me}: the function returned {type(result).__name__}, not a pandas "
                        "DataFrame. Fix: return pd.DataFrame({...}) with the schema's columns "
                        "(mode='pandas')")
    names = [str(c) for c in result.columns]
    _check_unique(me, names)
    out = {}
    for name, (_, series) in zip(names, result.items(), strict=True):
        try:
            out[name] = pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"{me}: column '{name}' of the function's result mixes types or "
                            f"holds objects Arrow cannot read ({exc}). Fix: return one "
                            "type per column") from exc
    return out


def _check_unique(me: str, names: Sequence[str]) -> None:
    twice = sorted({n for n in names if list(names).count(n) > 1})
    if twice:
        raise DataError(f"{me}: the function's result has column(s) {twice} more than once. "
                        "Fix: return each schema column once")
