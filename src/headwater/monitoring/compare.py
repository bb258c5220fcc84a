"""Served against recomputed feature values: which rows match, and when two values are equal.

:func:`compare_served` holds each feature of a table of served values (what ``/predict``
read online and logged) against a table of recomputed values (the offline point-in-time
join of the same rows, :func:`headwater.monitoring.skew.check_skew`) and counts, per
feature, the mismatches as a :class:`FeatureSkew`.

**Matching.** Rows are matched on key columns (for the skew check the join keys and
``logged_at``); a key occurring several times (one entity twice in one request, which
serving reads once) is matched by occurrence, the i-th served row with the i-th recomputed
row; ``keys=()`` matches by position. A served row without a recomputed partner (or the
other way round) is a DataError.

**Equality.** Values are equal when:

* numbers (any integer, float or decimal widths): both integers and exactly equal, else
  ``|s - o| <= absolute + relative * max(|s|, |o|)`` (:class:`Tolerance`, default
  relative 1e-6, absolute 1e-9, so a float64 stored as float32 (relative error below
  6e-8) or summed in another order is not skew); NaN equals NaN, an infinity only itself;
* strings, booleans, binary and dates: exactly; timestamps: the same instant (naive read
  as UTC), at the finer of the two units;
* lists: the same length and every element equal by these rules (nested lists too);
* null equals only null. A served null where the offline value is not counts as a
  mismatch and also as ``missing_online``; a served value where offline is null as a
  mismatch and ``missing_offline``. ``mismatch_rate`` is ``mismatches / compared``.

Two types that cannot be compared (a string served, a number offline: the feature's type
changed since serving; :func:`incomparable` says why) make :func:`compare_served` raise a
DataError naming the feature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from headwater.errors import DataError
from headwater.monitoring.findings import json_safe

DEFAULT_EXAMPLES = 5
_UNITS = ("s", "ms", "us", "ns")
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Tolerance:
    """When two numbers are equal: ``|s - o| <= absolute + relative * max(|s|, |o|)``."""

    relative: float = 1e-6
    absolute: float = 1e-9

    def __post_init__(self) -> None:
        for name in ("relative", "absolute"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value) and value >= 0):
                raise DataError(f"Tolerance.{name} must be a finite number >= 0, got "
                                f"{value!r}. Fix: pass e.g. Tolerance(relative=1e-6)")


DEFAULT_TOLERANCE = Tolerance()


@dataclass(frozen=True)
class SkewExample:
    """One mismatched row: its ``keys`` (key and context columns by name) and values."""

    keys: Mapping[str, Any]
    served: Any
    offline: Any

    def to_dict(self) -> dict[str, Any]:
        return {"keys": {k: json_safe(v) for k, v in self.keys.items()},
                "served": json_safe(self.served), "offline": json_safe(self.offline)}


@dataclass(frozen=True)
class FeatureSkew:
    """One feature compared over ``compared`` rows (see the module docstring for the
    counts); ``both_null`` rows were null on both sides, ``examples`` are the first
    mismatched rows."""

    feature: str
    compared: int
    mismatches: int
    missing_online: int
    missing_offline: int
    both_null: int
    examples: tuple[SkewExample, ...] = ()

    @property
    def mismatch_rate(self) -> float | None:
        """``mismatches / compared``; None when no row was compared."""
        return None if self.compared == 0 else self.mismatches / self.compared

    def merged(self, other: FeatureSkew, examples: int) -> FeatureSkew:
        """The counts of both, and up to ``examples`` examples."""
        return FeatureSkew(self.feature, self.compared + other.compared,
                           self.mismatches + other.mismatches,
                           self.missing_online + other.missing_online,
                           self.missing_offline + other.missing_offline,
                           self.both_null + other.both_null,
                           (self.examples + other.examples)[:examples])

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "compared": self.compared,
                "mismatches": self.mismatches, "missing_online": self.missing_online,
                "missing_offline": self.missing_offline, "both_null": self.both_null,
                "mismatch_rate": self.mismatch_rate,
                "examples": [e.to_dict() for e in self.examples]}


def compare_served(served: Any, recomputed: Any, *, keys: Sequence[str],
                   features: Sequence[str], tolerance: Tolerance = DEFAULT_TOLERANCE,
                   examples: int = DEFAULT_EXAMPLES,
                   context: Sequence[str] = ()) -> dict[str, FeatureSkew]:
    """Compare each of ``features`` between ``served`` and ``recomputed`` (Arrow, pandas or
    polars), rows matched on ``keys`` (see the module docstring); per feature, in order,
    its :class:`FeatureSkew` with up to ``examples`` mismatched rows showing the ``keys``
    and ``context`` columns of ``served``. DataError for a missing column, rows that do not
    match, or types that cannot be compared."""
    from headwater.offline.frames import to_arrow

    served, recomputed = to_arrow(served, "served"), to_arrow(recomputed, "recomputed")
    _require(served, [*keys, *context, *features], "served")
    _require(recomputed, [*keys, *features], "recomputed")
    for name in features:
        reason = incomparable(served.schema.field(name).type,
                              recomputed.schema.field(name).type)
        if reason is not None:
            raise DataError(f"feature '{name}': {reason}. Fix: compare values of one type "
                            "(the feature's type changed since it was served)")
    aligned = recomputed.take(pa.array(_match(served, recomputed, list(keys))))
    shown = served.select(list(dict.fromkeys([*keys, *context])))
    out = {}
    for name in features:
        a, b = _plain(served.column(name)), _plain(aligned.column(name))
        a_null, b_null = _nulls(a), _nulls(b)
        bad = np.flatnonzero(~_equal(a, b, tolerance))
        rows = pa.array(bad[:max(examples, 0)], pa.int64())
        picked = zip(shown.take(rows).to_pylist(), a.take(rows).to_pylist(),
                     b.take(rows).to_pylist(), strict=True)
        out[name] = FeatureSkew(
            name, served.num_rows, len(bad), int((a_null & ~b_null).sum()),
            int((~a_null & b_null).sum()), int((a_null & b_null).sum()),
            tuple(SkewExample(k, s, o) for k, s, o in picked))
    return out


def incomparable(served: pa.DataType, offline: pa.DataType) -> str | None:
    """Why values of these two types cannot be compared, or None when they can (a column
    of nulls compares with anything)."""
    kinds = _family(served), _family(offline)
    if None in kinds:
        return f"served type {served} / offline type {offline}: not a comparable type"
    if "null" in kinds:
        return None
    if kinds[0] != kinds[1]:
        return f"served values are {served}, offline values are {offline}"
    if kinds[0] == "list":
        return incomparable(served.value_type, offline.value_type)
    return None


def _family(kind: pa.DataType) -> str | None:
    if pat.is_dictionary(kind):
        return _family(kind.value_type)
    tests = (("null", pat.is_null), ("bool", pat.is_boolean), ("numeric", pat.is_integer),
             ("numeric", pat.is_floating), ("numeric", pat.is_decimal),
             ("string", pat.is_string), ("string", pat.is_large_string),
             ("binary", pat.is_binary), ("binary", pat.is_large_binary),
             ("timestamp", pat.is_timestamp), ("date", pat.is_date),
             ("list", pat.is_list), ("list", pat.is_large_list),
             ("list", pat.is_fixed_size_list))
    return next((name for name, test in tests if test(kind)), None)


def _require(table: pa.Table, names: Sequence[str], side: str) -> None:
    missing = [n for n in dict.fromkeys(names) if n not in table.column_names]
    if missing:
        raise DataError(f"compare_served: the {side} table has no column(s) {missing}; its "
                        f"columns are {table.column_names}. Fix: pass tables holding the "
                        "key and feature columns")


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array, dictionaries decoded."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pat.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values


def _nulls(values: pa.Array) -> Bools:
    return np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _equal(a: pa.Array, b: pa.Array, tolerance: Tolerance) -> Bools:
    """Per row: equal by the module docstring's rules (null equal to null only)."""
    a, b = _plain(a), _plain(b)
    a_null, b_null = _nulls(a), _nulls(b)
    both = ~a_null & ~b_null
    same = np.zeros(len(a), dtype=bool)
    kind = _family(a.type) if not pat.is_null(a.type) else _family(b.type)
    if both.any():
        if kind == "numeric":
            same = _numbers_equal(a, b, tolerance)
        elif kind == "list":
            same = _lists_equal(a, b, both, tolerance)
        else:
            if kind == "timestamp":
                a, b = _instants(a, b)
            same = _exact(pc.equal(a, b))
    return (a_null & b_null) | (both & same)


def _exact(equal: pa.Array) -> Bools:
    return np.asarray(equal.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _numbers_equal(a: pa.Array, b: pa.Array, tolerance: Tolerance) -> Bools:
    if pat.is_integer(a.type) and pat.is_integer(b.type):
        return _exact(pc.equal(a, b))
    x, y = (np.asarray(pc.cast(v, pa.float64(), safe=False).fill_null(0.0)
                       .to_numpy(zero_copy_only=False), dtype=np.float64) for v in (a, b))
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.isfinite(x) & np.isfinite(y) & (
            np.abs(x - y) <= tolerance.absolute
            + tolerance.relative * np.maximum(np.abs(x), np.abs(y)))
    result: Bools = (x == y) | (np.isnan(x) & np.isnan(y)) | close
    return result


def _instants(a: pa.Array, b: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Timestamps as int64 counts of the finer unit (naive ones read as UTC)."""
    unit = max(a.type.unit, b.type.unit, key=_UNITS.index)
    return (pc.cast(a, pa.timestamp(unit, a.type.tz)).cast(pa.int64()),
            pc.cast(b, pa.timestamp(unit, b.type.tz)).cast(pa.int64()))


def _lists_equal(a: pa.Array, b: pa.Array, both: Bools, tolerance: Tolerance) -> Bools:
    lengths = [np.asarray(pc.list_value_length(v).fill_null(-1)
                          .to_numpy(zero_copy_only=False)) for v in (a, b)]
    rows = np.flatnonzero(both & (lengths[0] == lengths[1]))
    picked = pa.array(rows, pa.int64())
    sa, sb = a.take(picked), b.take(picked)
    inner = _equal(sa.flatten(), sb.flatten(), tolerance)
    parents = np.asarray(pc.list_parent_indices(sa).to_numpy(zero_copy_only=False))
    wrong = np.bincount(parents[~inner], minlength=len(rows))
    same = np.zeros(len(a), dtype=bool)
    same[rows] = wrong == 0
    return same


def _match(served: pa.Table, recomputed: pa.Table, keys: list[str]) -> npt.NDArray[np.int64]:
    """For each served row, the index of its recomputed row (see the module docstring)."""
    n, m = served.num_rows, recomputed.num_rows
    if not keys:
        if n != m:
            raise DataError(f"compare_served: {n} served rows and {m} recomputed rows cannot "
                            "be matched by position (keys=()). Fix: pass keys=[...]")
        return np.arange(n, dtype=np.int64)
    codes = []
    for key in keys:
        s, r = _plain(served.column(key)), _plain(recomputed.column(key))
        reason = incomparable(s.type, r.type)
        if reason is None and s.type != r.type:
            try:
                r = r.cast(s.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                reason = str(exc)
        if reason is not None:
            raise DataError(f"compare_served: key '{key}' cannot be matched: {reason}")
        both = pc.dictionary_encode(pa.concat_arrays([s, r]), null_encoding="encode")
        codes.append(np.asarray(both.indices.to_numpy(zero_copy_only=False), np.int64))
    group = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)[1].reshape(-1)
    gs, gr = group[:n], group[n:]
    occ_s, occ_r = _occurrence(gs), _occurrence(gr)
    width = int(max(occ_s.max(initial=0), occ_r.max(initial=0))) + 1
    id_s, id_r = gs * width + occ_s, gr * width + occ_r
    lone = np.flatnonzero(~np.isin(id_s, id_r))
    if len(lone):
        first = served.select(keys).slice(int(lone[0]), 1).to_pylist()[0]
        raise DataError(f"compare_served: {len(lone)} of {n} served rows have no recomputed "
                        f"row with the same {keys}, e.g. {first}. Fix: recompute exactly the "
                        "served rows")
    if n != m:
        raise DataError(f"compare_served: {m - n} of {m} recomputed rows match no served row "
                        f"on {keys}. Fix: recompute exactly the served rows")
    order_s, order_r = np.argsort(id_s, kind="stable"), np.argsort(id_r, kind="stable")
    out = np.empty(n, dtype=np.int64)
    out[order_s] = order_r
    return out


def _occurrence(group: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """How many earlier rows have the same group: 0, 1, ... per row."""
    order = np.argsort(group, kind="stable")
    ordered = group[order]
    index = np.arange(len(group))
    start = np.ones(len(group), dtype=bool)
    start[1:] = ordered[1:] != ordered[:-1]
    out = np.empty(len(group), dtype=np.int64)
    out[order] = index - np.maximum.accumulate(np.where(start, index, 0))
    return out


