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
  ``histogram``: ``edges`` (``profile.HISTOGRAM_BINS + 1`` fixed edges at the deciles, duplicates
  removed, so skewed features still spread over bins) and ``counts`` per bin, the last bin
  closed. Monitoring bins new values by the same edges; values outside them are out of
  range.
* ``categorical`` (strings, booleans, dictionaries): ``distinct``, ``top`` (up to
  ``TOP_CATEGORIES`` ``{"value", "count"}`` by count, then value) and ``other`` (the
  non-null rows outside ``top``).
* ``time`` (timestamps, dates): ``min`` and ``max`` as ISO strings.
* ``other`` (lists and other types): only count and nulls.

Statistics of an empty (all null) column are None. Numeric and categorical statistics come
from :mod:`headwater.monitoring.profile` (one implementation for the training reference and
monitoring windows); only the exact quantiles and ``distinct`` are computed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.monitoring.profile import CategoricalProfile, NumericProfile

FORMAT_VERSION = 1
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
    """The statistics of one column (see the module docstring). Numeric and categorical
    columns are summarised by :func:`headwater.monitoring.profile.profile`, the one
    implementation that monitoring windows share, so a window profiled with the reference's
    histogram edges is binned exactly as the training data was."""
    import pyarrow as pa
    import pyarrow.types as pat

    from headwater.monitoring.profile import NumericProfile, profile

    kind = column.type
    if pat.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    base = {"type": str(column.type), "count": len(column), "nulls": column.null_count}
    if pat.is_timestamp(kind) or pat.is_date(kind):
        return {"kind": "time", **base, **_time(column)}
    if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind)
            or pat.is_boolean(kind) or pat.is_string(kind) or pat.is_large_string(kind)
            or pat.is_string_view(kind)):
        return {"kind": "other", **base}
    stats = profile(pa.table({"column": column}))["column"]
    if isinstance(stats, NumericProfile):
        return {"kind": "numeric", **base, **_numeric(stats, column)}
    return {"kind": "categorical", **base, **_categorical(stats, column)}


def _numeric(stats: NumericProfile, column: pa.Array | pa.ChunkedArray) -> dict[str, Any]:
    """The profile's statistics, plus exact quantiles of the training data (a profile's
    are histogram estimates)."""
    import numpy as np
    import pyarrow as pa

    base: dict[str, Any] = {"nulls": stats.nulls, "infinite": stats.infinite}
    if stats.mean is None:
        return {**base, "min": None, "max": None, "mean": None, "std": None,
                "quantiles": None, "histogram": None}
    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    points = np.quantile(values[np.isfinite(values)], list(QUANTILES.values()))
    return {
        **base, "min": stats.min, "max": stats.max, "mean": stats.mean, "std": stats.std,
        "quantiles": {k: float(v) for k, v in zip(QUANTILES, points, strict=True)},
        "histogram": {"edges": list(stats.edges), "counts": list(stats.counts)},
    }


def _categorical(stats: CategoricalProfile, column: pa.Array | pa.ChunkedArray
                 ) -> dict[str, Any]:
    """The profile's largest counts; ``distinct`` counted exactly (a profile keeps at most
    MAX_CATEGORIES values)."""
    import pyarrow.compute as pc

    top = stats.top(TOP_CATEGORIES)
    return {
        "distinct": int(pc.count_distinct(column, mode="only_valid").as_py()),
        "top": [{"value": v, "count": n} for v, n in top],
        "other": stats.count - stats.nulls - sum(n for _, n in top),
    }


def _time(column: pa.Array | pa.ChunkedArray) -> dict[str, Any]:
    import pyarrow.compute as pc

    bounds = pc.min_max(column)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return {"min": None if low is None else low.isoformat(),
            "max": None if high is None else high.isoformat()}
