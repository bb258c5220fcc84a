"""Batch inputs of the aggregators: the values of a column and the order key of its events.

``values`` may be a numpy array, a pyarrow ``Array`` or ``ChunkedArray``, or a Python sequence.
:func:`valid_values` turns it into a numpy array holding only the non-null values; null means an
Arrow null, ``None`` in an object array, or NaN in a float array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from headwater.errors import DataError

Values = Any
"""A batch of column values: a numpy array, a pyarrow Array/ChunkedArray or a sequence."""


@dataclass(frozen=True)
class Order:
    """The order key of a batch of events, one int64 per event.

    ``ts`` is the event time and ``created`` the created time, both in integer microseconds
    (fill a missing created time with the minimum int64); ``seq`` is the ingestion order, unique
    per event. The greatest ``(ts, created, seq)`` is the latest event.
    """

    ts: npt.NDArray[np.int64]
    created: npt.NDArray[np.int64]
    seq: npt.NDArray[np.int64]

    @classmethod
    def of(
        cls,
        ts: Sequence[int] | npt.NDArray[np.int64],
        created: Sequence[int] | npt.NDArray[np.int64] | None = None,
        seq: Sequence[int] | npt.NDArray[np.int64] | None = None,
    ) -> Order:
        """An order key from event times, with optional created times and ingestion order.

        Without ``created`` every event gets the minimum int64; without ``seq`` the position in
        the batch is the ingestion order, which orders events within this one batch only: pass
        a global ingestion order when states built from several batches are merged.
        """
        ts_a = np.asarray(ts, dtype=np.int64)
        n = ts_a.shape[0]
        created_a = (
            np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
            if created is None
            else np.asarray(created, dtype=np.int64)
        )
        seq_a = np.arange(n, dtype=np.int64) if seq is None else np.asarray(seq, dtype=np.int64)
        if created_a.shape != ts_a.shape or seq_a.shape != ts_a.shape:
            raise DataError(
                "Order: ts, created and seq must have one entry per event; "
                f"got {ts_a.shape[0]}, {created_a.shape[0]} and {seq_a.shape[0]}"
            )
        return cls(ts_a, created_a, seq_a)


def _to_numpy(values: Values) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_] | None]:
    """The values as numpy, and a validity mask when the input carried nulls."""
    module = type(values).__module__
    if module.startswith("pyarrow"):
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        if arr.null_count:
            mask = np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=np.bool_)
            filled = arr.drop_null().to_numpy(zero_copy_only=False)
            full = np.empty(len(arr), dtype=filled.dtype)
            full[mask] = filled
            return full, mask
        return np.asarray(arr.to_numpy(zero_copy_only=False)), None
    arr_np = np.asarray(values)
    if arr_np.ndim != 1:
        arr_np = arr_np.reshape(-1)
    if arr_np.dtype == object:
        mask = np.fromiter((v is not None for v in arr_np), dtype=np.bool_, count=arr_np.shape[0])
        return arr_np, mask
    return arr_np, None


def valid_values(values: Values) -> npt.NDArray[Any]:
    """The non-null values of a batch as a 1-d numpy array.

    Object arrays of numbers become int64 or float64 when every value is an int or a float; that
    conversion is a Python pass over the batch, so hot paths should pass numpy or Arrow arrays.
    """
    arr, mask = _to_numpy(values)
    if mask is not None:
        arr = arr[mask]
    if arr.dtype == object and arr.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    if arr.dtype == object:
        if all(isinstance(v, (bool, np.bool_)) for v in arr):
            arr = arr.astype(np.bool_)
        elif all(isinstance(v, (int, np.integer)) for v in arr):
            arr = arr.astype(np.int64)
        elif all(isinstance(v, (int, float, np.integer, np.floating)) for v in arr):
            arr = arr.astype(np.float64)
    if arr.dtype.kind == "f":
        arr = arr[~np.isnan(arr)]
    return arr


def valid_mask(values: Values) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """All values as numpy and a mask of the non-null ones (same length as the batch)."""
    arr, mask = _to_numpy(values)
    if mask is None:
        mask = np.ones(arr.shape[0], dtype=np.bool_)
    if arr.dtype.kind == "f":
        mask = mask & ~np.isnan(arr)
    return arr, mask


def numeric(values: Values, function: str) -> npt.NDArray[Any]:
    """The non-null values of a batch, which must be numbers (bool counts as int)."""
    return _as_numbers(valid_values(values), function)


def _as_numbers(arr: npt.NDArray[Any], function: str) -> npt.NDArray[Any]:
    """Numbers as int64 or float64 (bool as int, uint64 beyond int64 as float)."""
    if arr.dtype.kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        raise DataError(
            f"aggregation '{function}': values must be numeric, got numpy dtype {arr.dtype}. "
            "Fix: aggregate a numeric column, or use count, last or count_distinct"
        )
    if arr.dtype.kind == "u":
        if arr.dtype.itemsize == 8 and arr.shape[0] and int(arr.max()) > np.iinfo(np.int64).max:
            return arr.astype(np.float64)
        return arr.astype(np.int64)
    return arr


Starts = npt.NDArray[np.intp]
"""Grouped updates: values sorted so each group is contiguous, group ``i`` holding the rows
``starts[i]:starts[i + 1]`` (the last one to the end); every group has at least one row."""


def numeric_mask(values: Values, function: str) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """All values of a batch as int64 or float64 numbers, nulls as 0, and the mask of the
    non-null ones (for grouped updates, which keep every row in place)."""
    arr, mask = valid_mask(values)
    if arr.dtype == object:
        valid = _as_numbers(valid_values(arr[mask]), function)
        out = np.zeros(arr.shape[0], dtype=valid.dtype if valid.shape[0] else np.int64)
        out[mask] = valid
        return out, mask
    if arr.dtype.kind in "biuf":
        arr = np.where(mask, arr, arr.dtype.type(0))  # null slots may hold anything
    out = _as_numbers(arr, function)
    return (out.astype(np.float64) if out.dtype.kind == "f" else out), mask


def group_counts(mask: npt.NDArray[np.bool_], starts: Starts) -> npt.NDArray[np.int64]:
    """The number of non-null values of each group."""
    if starts.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return np.add.reduceat(mask.astype(np.int64), starts)


def group_of_rows(starts: Starts, n: int) -> npt.NDArray[np.intp]:
    """The group of each of the ``n`` rows."""
    lengths = np.diff(np.append(starts, n))
    return np.repeat(np.arange(starts.shape[0], dtype=np.intp), lengths)
