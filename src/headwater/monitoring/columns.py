"""Which columns drift detection compares, of which kind, and their values as numpy.

Kinds, by Arrow type (the same for pandas and polars input, converted once):

* **numeric**: integers, floats and decimals. Integers count as numeric, even with few
  distinct values (ties are handled exactly); cast one to string to test it as categorical.
  An integer reference column may be compared with a float current one (pandas turns an
  integer column with nulls into floats).
* **categorical**: strings, booleans and dictionary (pandas ``category``, polars
  ``Categorical``) columns.
* anything else (timestamps, dates, lists, binary, structs) is not tested: left out of the
  default selection (and listed in ``DriftReport.skipped``), refused when named in ``columns=``.

Nulls, and NaN in float columns, are counted and left out of the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from headwater.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)


@dataclass(frozen=True)
class NumericSample:
    """One side of a numeric column without its nulls and NaN."""

    values: npt.NDArray[np.generic]
    nulls: int


@dataclass(frozen=True)
class CategoryCounts:
    """Both sides of a categorical column counted over one list of categories."""

    categories: pa.Array
    reference: npt.NDArray[np.int64]
    current: npt.NDArray[np.int64]
    reference_nulls: int
    current_nulls: int


def family(data_type: pa.DataType) -> str | None:
    """``numeric``, ``string``, ``bool`` or None (not tested); categorical kinds are
    ``string`` and ``bool``, which must not change into each other."""
    import pyarrow.types as t

    if t.is_dictionary(data_type):
        return family(data_type.value_type)
    if t.is_integer(data_type) or t.is_floating(data_type) or t.is_decimal(data_type):
        return "numeric"
    if t.is_string(data_type) or t.is_large_string(data_type) or t.is_string_view(data_type):
        return "string"
    if t.is_boolean(data_type):
        return "bool"
    return None


def kind_of(data_type: pa.DataType) -> str:
    return NUMERIC if family(data_type) == "numeric" else CATEGORICAL


def select(reference: pa.Table, current: pa.Table, columns: Sequence[str] | None
           ) -> tuple[list[str], list[str]]:
    """The columns to test and the columns skipped for their type, checked on both sides."""
    import pyarrow as pa

    if columns is not None:
        if isinstance(columns, str):
            raise DataError(f"detect_drift: columns={columns!r} is one string. Fix: pass a "
                            f"list of column names, e.g. columns=[{columns!r}]")
        unknown = [c for c in columns if c not in reference.column_names]
        if unknown:
            raise DataError(f"detect_drift: column(s) {unknown} named in columns= are not in "
                            f"the reference data (it has {reference.column_names}). Fix: "
                            "name columns of the reference data")
    names = list(columns) if columns is not None else reference.column_names
    chosen, skipped = [], []
    for name in names:
        ref_family = family(reference.schema.field(name).type)
        for table, side in ((reference, "reference"), (current, "current")):
            if name in table.column_names and table.schema.field(name).type == pa.null():
                _check_not_all_null(0, table.num_rows, name, side)
        if name not in current.column_names:
            raise DataError(f"detect_drift: column '{name}' is in the reference data but not "
                            "in the current data. Fix: give the current data that column, or "
                            "leave it out with columns=")
        cur_family = family(current.schema.field(name).type)
        if ref_family is None:
            if columns is not None:
                raise DataError(
                    f"detect_drift: column '{name}' has type "
                    f"{reference.schema.field(name).type}, which drift detection does not "
                    "test (numbers, strings, booleans and categories only). Fix: leave it "
                    "out of columns=")
            skipped.append(name)
            continue
        if cur_family != ref_family:
            raise DataError(
                f"detect_drift: column '{name}' changed type from "
                f"{reference.schema.field(name).type} (reference) to "
                f"{current.schema.field(name).type} (current). Fix: cast the current data "
                "back to the reference type, or leave the column out with columns=")
        chosen.append(name)
    return chosen, skipped


def numeric_sample(column: pa.ChunkedArray, name: str, side: str) -> NumericSample:
    """The non-null, non-NaN values of one side of a numeric column."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    nulls = column.null_count
    if nulls:
        column = column.drop_null()
    if t.is_decimal(column.type) or t.is_dictionary(column.type):
        column = pc.cast(column, pa.float64())
    values = column.to_numpy()
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            if np.isinf(values).any():
                raise DataError(f"detect_drift: column '{name}' holds infinite values in the "
                                f"{side} data. Fix: replace them with null or a finite value")
            nulls += int((~finite).sum())
            values = values[finite]
    _check_not_all_null(len(values), nulls, name, side)
    return NumericSample(values, nulls)


def category_counts(reference: pa.ChunkedArray, current: pa.ChunkedArray, name: str
                    ) -> CategoryCounts:
    """Counts of every category seen on either side (hashing in Arrow; no per-row Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sides = []
    for column, side in ((reference, "reference"), (current, "current")):
        nulls = column.null_count
        counts = pc.value_counts(column.drop_null() if nulls else column)
        values = counts.field("values")
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        values = pc.cast(values, pa.large_string()) if pa.types.is_string(
            values.type) or pa.types.is_string_view(values.type) else values
        sides.append((values, counts.field("counts").to_numpy().astype(np.int64), nulls))
        _check_not_all_null(int(sides[-1][1].sum()), nulls, name, side)
    (ref_values, ref_counts, ref_nulls), (cur_values, cur_counts, cur_nulls) = sides
    at = pc.index_in(cur_values, value_set=ref_values)  # position in the reference, or null
    new = at.is_null().to_numpy(zero_copy_only=False)
    categories = pa.concat_arrays([ref_values, cur_values.filter(pa.array(new))])
    reference_counts = np.concatenate([ref_counts, np.zeros(int(new.sum()), np.int64)])
    current_counts = np.zeros(len(categories), dtype=np.int64)
    current_counts[pc.fill_null(at, 0).to_numpy()[~new]] = cur_counts[~new]
    current_counts[len(ref_values):] = cur_counts[new]
    return CategoryCounts(categories, reference_counts, current_counts, ref_nulls, cur_nulls)


def _check_not_all_null(values: int, nulls: int, name: str, side: str) -> None:
    if values == 0:
        raise DataError(f"detect_drift: column '{name}' has no values in the {side} data "
                        f"(all {nulls} are null). Fix: leave it out with columns=, or pass "
                        "data where it has values")
