"""The one conversion from feature columns to estimator input, used by training, batch
inference and ``/predict`` alike, so a model sees the same representation everywhere.

* ``matrix``: every feature is numeric or boolean; the input is a float64 numpy matrix in
  the model's feature order, nulls as NaN (the fast path: no pandas).
* ``frame``: at least one feature is a string (or another non-numeric type); the input is a
  pandas DataFrame with the feature columns in order, numbers as float64 (nulls NaN), strings
  as Python objects (nulls None). The estimator (e.g. a Pipeline with an encoder) must take
  it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from headwater.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

MATRIX = "matrix"
FRAME = "frame"


def input_kind(schema: pa.Schema, features: Sequence[str]) -> str:
    """``matrix`` when every feature column of ``schema`` is numeric or boolean, else
    ``frame``."""
    import pyarrow.types as pat

    for name in features:
        kind = schema.field(name).type
        if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_boolean(kind)
                or pat.is_decimal(kind) or pat.is_null(kind)):
            return FRAME
    return MATRIX


def model_input(table: pa.Table, features: Sequence[str], kind: str) -> Any:
    """The estimator input for ``table``'s ``features`` columns (see the module docstring);
    a missing column is a DataError naming it."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pat

    missing = [f for f in features if f not in table.column_names]
    if missing:
        raise DataError(f"the model's input columns {missing} are missing; it was trained on "
                        f"{list(features)}. Fix: select the model's feature service and pass "
                        "the request fields it needs")
    columns = []
    for name in features:
        column = table.column(name)
        if pat.is_float64(column.type):  # already float64, nulls become NaN: no cast
            columns.append(column.to_numpy(zero_copy_only=False))
        elif kind == MATRIX or pat.is_integer(column.type) or pat.is_floating(column.type) or (
                pat.is_boolean(column.type) or pat.is_null(column.type)
                or pat.is_decimal(column.type)):
            try:
                floats = pc.cast(column, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(f"feature '{name}' of type {column.type} cannot be read as a "
                                f"number: {exc}. Fix: give the model numeric features, or a "
                                "Pipeline that encodes them") from exc
            columns.append(floats.to_numpy(zero_copy_only=False))
        else:
            columns.append(column.to_pylist())
    if kind == MATRIX:
        if not columns:
            return np.empty((table.num_rows, 0))
        return np.column_stack(columns).astype(np.float64, copy=False)
    import pandas as pd

    return pd.DataFrame({name: values for name, values in zip(features, columns, strict=True)},
                        columns=list(features))
