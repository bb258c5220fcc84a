"""Reference statistics of a training frame, stored with each model version for monitoring.

:func:`reference_statistics` summarises columns of an Arrow table, vectorized with
pyarrow.compute and numpy, into a JSON-able dict::

    {"version": 1, "rows": n,
     "features": {name: stats, ...},
     "label": stats, "prediction": stats, "probability": stats}   # when given

Per column ``stats`` has ``kind``, ``type`` (the Arrow type), ``count`` (rows), ``nulls``
(null values, and NaN for floating columns) and, by kind:

* ``numeric`` (integers, floats, decimals): ``min``, ``max``, ``mean``, ``std``
  (population, ddof=0), ``quantiles`` ``p01 p05 p10 p25 p50 p75 p90 p95 p99`` (linear
  interpolation), ``infinite`` (count of +-inf, left out of the other statistics) and
  ``histogram``: ``edges`` (``HISTOGRAM_BINS + 1`` fixed edges at the deciles, duplicates
  removed, so skewed features still spread over bins) and ``counts`` per bin, the last bin
  closed. Monitoring bins new values by the same edges; values outside them are out of
  range.
* ``categorical`` (strings, booleans, dictionaries): ``distinct``, ``top`` (up to
  ``TOP_CATEGORIES`` ``{"value", "count"}`` by count, then value) and ``other`` (the
  non-null rows outside ``top``).
* ``time`` (timestamps, dates): ``min`` and ``max`` as ISO strings.
* ``other`` (lists and other types): only count and nulls.

Statistics of an empty (all null) column are None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

FORMAT_VERSION = 1
HISTOGRAM_BINS = 10
TOP_CATEGORIES = 20
QUANTILES = {"p01": 0.01, "p05": 0.05, "p10": 0.10, "p25": 0.25, "p50": 0.50, "p75": 0.75,
             "p90": 0.90, "p95": 0.95, "p99": 0.99}


def reference_statistics(table: pa.Table, features: Sequence[str], *,
                         label: str | None = None,
                         outputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Statistics of ``table``'s ``features`` (and of its ``label`` column when given),
    plus those of model ``outputs`` (name -> array, e.g. ``prediction`` and
    ``probability`` on the test rows); see the module docstring for the layout."""
    import pyarrow as pa

    result: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "rows": int(table.num_rows),
        "features": {name: column_statistics(table.column(name)) for name in features},
    }
    if label is not None:
        result["label"] = column_statistics(table.column(label))
    for name, values in (outputs or {}).items():
        array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
        result[name] = column_statistics(array)
    return result


def column_statistics(column: pa.Array | pa.ChunkedArray) -> dict[str, Any]:
    """The statistics of one column (see the module docstring)."""
    import pyarrow as pa
    import pyarrow.types as pat

    kind = column.type
    if pat.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    base = {"type": str(column.type), "count": len(column), "nulls": column.null_count}
    if pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind):
        return {"kind": "numeric", **base, **_numeric(column.cast(pa.float64()))}
    if pat.is_boolean(kind) or pat.is_string(kind) or pat.is_large_string(kind) or (
            pat.is_string_view(kind)):
        return {"kind": "categorical", **base, **_categorical(column)}
    if pat.is_timestamp(kind) or pat.is_date(kind):
        return {"kind": "time", **base, **_time(column)}
    return {"kind": "other", **base}


def _numeric(column: pa.Array | pa.ChunkedArray) -> dict[str, Any]:
    import numpy as np

    values = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    nan = np.isnan(values)
    finite = values[np.isfinite(values)]
    # nulls became NaN: NaN values count as nulls too
    stats: dict[str, Any] = {"nulls": int(nan.sum()),
                             "infinite": int((~nan).sum() - len(finite))}
    if len(finite) == 0:
        return {**stats, "min": None, "max": None, "mean": None, "std": None,
                "quantiles": None, "histogram": None}
    points = np.quantile(finite, list(QUANTILES.values()))
    return {
        **stats,
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "quantiles": {k: float(v) for k, v in zip(QUANTILES, points, strict=True)},
        "histogram": histogram(finite),
    }


def histogram(finite: np.ndarray) -> dict[str, list[Any]]:
    """Counts of ``finite`` values in bins whose edges are their deciles (duplicates
    removed; a constant column has one edge and one bin holding every value)."""
    import numpy as np

    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)))
    if len(edges) == 1:
        return {"edges": [float(edges[0])], "counts": [len(finite)]}
    counts, _ = np.histogram(finite, bins=edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _categorical(column: pa.Array | pa.ChunkedArray) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    counts = pc.value_counts(column.drop_null() if isinstance(column, pa.Array) else
                             pc.drop_null(column))
    values, frequencies = counts.field("values"), counts.field("counts")
    order = pc.sort_indices(pa.table({"n": frequencies, "v": values}),
                            sort_keys=[("n", "descending"), ("v", "ascending")])
    top = order[:TOP_CATEGORIES]
    picked_values = pc.take(values, top).to_pylist()
    picked_counts = pc.take(frequencies, top).to_pylist()
    non_null = len(column) - column.null_count
    return {
        "distinct": len(values),
        "top": [{"value": v, "count": int(c)}
                for v, c in zip(picked_values, picked_counts, strict=True)],
        "other": int(non_null - sum(picked_counts)),
    }


def _time(column: pa.Array | pa.ChunkedArray) -> dict[str, Any]:
    import pyarrow.compute as pc

    bounds = pc.min_max(column)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return {"min": None if low is None else low.isoformat(),
            "max": None if high is None else high.isoformat()}
