"""Training/serving skew: the features ``/predict`` served, against the offline recompute.

:func:`check_skew` reads the prediction log of a model over ``[start, end)``
(``store.read_predictions``), optionally a uniform sample of its rows, and, per logged model
version, recomputes the features that version was served with the offline point-in-time join
(``store.get_historical_features``) of the feature service it was trained on
(:func:`~headwater.inference.service.training_service`), for each logged entity with its
``logged_at`` as the event time and the logged request fields (on-demand features run
offline on the same request data). :func:`compare_served` then compares served and
recomputed values feature by feature, and every feature gets one :class:`Finding`
``skew.mismatch_rate`` (subject ``model:<name>``, target the feature), failed when its
mismatch rate is above ``max_mismatch_rate`` (default 0.01).

**What a mismatch means.** ``/predict`` reads the online store at ``t'`` and logs at
``t = logged_at``, a few milliseconds later. Online, the value at ``t'`` is the latest row
delivered so far (materialized, pushed or streamed) with event time ``<= t'`` and, with a
ttl, ``>= t' - ttl`` (else null); aggregations cover events ``< t'``. The recompute is the
point-in-time join at ``t``: the latest offline row with ``ts <= t`` within the ttl,
aggregations over events ``< t`` (ARCHITECTURE.md, "Point-in-time join", "Consistency
law"). So when every row with ``ts <= t`` had been delivered online by ``t``, and nothing
else was, the two agree: a consistent system shows zero mismatches. Everything else is
skew, on purpose: stale online data (a view not materialized since newer rows arrived:
an older value served, or null once it expired), rows known online only
(``push(..., to="online")``, streamed events not written offline), rows backfilled
offline later with earlier event times (the model will train on values it was never
served), a view or on-demand function changed since serving. A row with event time
between ``t'`` and ``t`` would differ too; milliseconds make that rare.

**Matching and equality** (:func:`compare_served`). Rows are matched on key columns (here
the join keys and ``logged_at``); a key occurring several times (one entity twice in one
request, which serving reads once) is matched by occurrence, the i-th served row with the
i-th recomputed row; ``keys=()`` matches by position. A served row without a recomputed
partner (or the other way round) is a DataError. Values are equal when:

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
changed since serving) make :func:`compare_served` raise a DataError naming the feature;
:func:`check_skew` reports such a feature as a failed finding with value None.

**Loud failures.** An unknown model is a NotFoundError. A window in which the model logged
no prediction gives one failed finding (target ``""``, value None) saying so, not an
error, so a monitor run on a quiet window alerts instead of crashing. A feature whose
served and recomputed values are all null proves nothing: its finding fails with value 0.0
and says so. Bad arguments (``start >= end``, ``sample < 1``, a rate outside [0, 1]) and
a log missing a column the version needs are DataErrors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from headwater.errors import DataError, NotFoundError
from headwater.monitoring.findings import Finding, failed

if TYPE_CHECKING:
    from headwater.models.base import ModelVersion
    from headwater.store import FeatureStore

CHECK = "skew.mismatch_rate"
TIME = "logged_at"
REQUEST_ID = "request_id"
VERSION = "model_version"
DEFAULT_SAMPLE = 10_000
DEFAULT_MAX_MISMATCH_RATE = 0.01
DEFAULT_EXAMPLES = 5
_LOG_COLUMNS = ("request_id", "logged_at", "model", "model_version")
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
        return {"keys": {k: _jsonable(v) for k, v in self.keys.items()},
                "served": _jsonable(self.served), "offline": _jsonable(self.offline)}


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


@dataclass(frozen=True)
class SkewResult:
    """What :func:`check_skew` found: per-feature counts (summed over the logged versions),
    the features whose types could not be compared (feature -> why) and the findings."""

    model: str
    window_start: datetime
    window_end: datetime
    rows_logged: int
    rows_compared: int
    versions: tuple[int, ...]
    features: Mapping[str, FeatureSkew]
    incomparable: Mapping[str, str]
    findings: tuple[Finding, ...]
    max_mismatch_rate: float
    tolerance: Tolerance = field(default=DEFAULT_TOLERANCE)

    @property
    def failed(self) -> list[Finding]:
        return failed(self.findings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: datetimes as ISO 8601, non-finite floats as strings."""
        return {"model": self.model, "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(), "rows_logged": self.rows_logged,
                "rows_compared": self.rows_compared, "versions": list(self.versions),
                "features": {n: s.to_dict() for n, s in self.features.items()},
                "incomparable": dict(self.incomparable),
                "max_mismatch_rate": self.max_mismatch_rate,
                "tolerance": {"relative": self.tolerance.relative,
                              "absolute": self.tolerance.absolute},
                "findings": [f.to_dict() for f in self.findings]}


# -- the pure comparison ------------------------------------------------------------------


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


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


# -- the store-level check ----------------------------------------------------------------


def check_skew(store: FeatureStore, model: str, *, start: datetime, end: datetime,
               sample: int | None = DEFAULT_SAMPLE, seed: int = 0,
               max_mismatch_rate: float = DEFAULT_MAX_MISMATCH_RATE,
               tolerance: Tolerance = DEFAULT_TOLERANCE,
               examples: int = DEFAULT_EXAMPLES) -> SkewResult:
    """Served against recomputed features of ``model`` over the predictions it logged with
    ``start <= logged_at < end`` (naive times are UTC; see the module docstring).
    ``sample`` rows of the window (read whole) are drawn uniformly without replacement with
    ``seed`` (None: every row). One finding per feature, failed when its mismatch rate is
    above ``max_mismatch_rate``, with up to ``examples`` mismatched rows in its details."""
    from headwater.types import to_utc

    if not (isinstance(start, datetime) and isinstance(end, datetime)):
        raise DataError(f"check_skew: start and end must be datetimes, got {start!r} and "
                        f"{end!r}. Fix: pass datetime(2024, 1, 1, tzinfo=timezone.utc)")
    window = to_utc(start), to_utc(end)
    if window[0] >= window[1]:
        raise DataError(f"check_skew: start {window[0]} is not before end {window[1]}. Fix: "
                        "pass a window [start, end) with start < end")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                               or sample < 1):
        raise DataError(f"check_skew: sample must be a positive number of rows or None "
                        f"(every row), got {sample!r}")
    rate = max_mismatch_rate
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise DataError(f"check_skew: max_mismatch_rate must be a fraction in [0, 1], got "
                        f"{rate!r}. Fix: pass e.g. 0.01 for 1%")
    if not isinstance(model, str) or not store.models.versions(model):
        raise NotFoundError(f"check_skew: no model {model!r} is registered in project "
                            f"'{store.project}'; models: {store.models.names() or 'none'}. "
                            "Fix: check the name")
    log = store.read_predictions(model, *window)
    logged = log.num_rows
    if sample is not None and logged > sample:
        picked = np.sort(np.random.default_rng(seed).choice(logged, sample, replace=False))
        log = log.take(pa.array(picked, pa.int64()))
    versions = tuple(int(v) for v in np.unique(log.column(VERSION).to_numpy())) if logged \
        else ()
    features: dict[str, FeatureSkew] = {}
    bad: dict[str, str] = {}
    views: dict[str, str] = {}
    for number in versions:
        rows = log.filter(pc.equal(log.column(VERSION), number))
        version = store.models.get(f"{model}:{number}")
        compared, reasons, owners = _check_version(store, version, rows, tolerance, examples)
        views.update(owners)
        bad.update({name: why for name, why in reasons.items() if name not in bad})
        for name, skew in compared.items():
            earlier = features.get(name)
            features[name] = skew if earlier is None else earlier.merged(skew, examples)
    subject = f"model:{model}"
    findings = tuple(_finding(subject, name, features.get(name), bad.get(name),
                              view=views.get(name, "?"), threshold=float(rate),
                              versions=versions, window=window)
                     for name in dict.fromkeys([*features, *bad]))
    if not logged:
        findings = (Finding(
            CHECK, subject, "", None, float(rate), True,
            f"model '{model}' logged no prediction in [{window[0].isoformat()}, "
            f"{window[1].isoformat()}): nothing to compare. Fix: check that the server logs "
            "predictions (settings.predictions_path) and that the model gets traffic, or "
            "widen the window", window_start=window[0], window_end=window[1]),)
    return SkewResult(model, window[0], window[1], logged, log.num_rows, versions, features,
                      bad, findings, float(rate), tolerance)


def _check_version(store: FeatureStore, version: ModelVersion, rows: pa.Table,
                   tolerance: Tolerance, examples: int
                   ) -> tuple[dict[str, FeatureSkew], dict[str, str], dict[str, str]]:
    """The logged ``rows`` of one version against their recompute: per-feature skew, the
    incomparable features (name -> why) and the view of each feature."""
    from headwater.inference.online import serving_plan

    plan = serving_plan(store, version)
    selection = store.resolve_features(plan.service)
    owners = {name: r.view.name for r in selection.requests for name in r.output_names}
    owners.update({name: r.view.name for r in selection.on_demand for name in r.output_names})
    join_keys = list(dict.fromkeys(k for r in selection.requests for k in r.view.join_keys))
    request, features = list(plan.request_fields), list(plan.fetched)
    label = f"model '{version.model}' version {version.version}"
    clash = [n for n in (*join_keys, *request, *features) if n in (TIME, REQUEST_ID)]
    if clash:
        raise DataError(f"check_skew: {label} has a join key, request field or feature "
                        f"named '{clash[0]}', like a column of the prediction log, which the "
                        "skew check cannot tell apart. Fix: rename it")
    keys, inputs, extra = logged_names([join_keys, version.features,
                                        [f for f in request if f not in version.features]])
    where = {**extra, **inputs, **keys}
    missing = [n for n in (*join_keys, *request, *features) if where[n] not in rows.column_names]
    if missing:
        raise DataError(f"check_skew: the prediction log of {label} has no column "
                        f"'{where[missing[0]]}' (for '{missing[0]}'); it has "
                        f"{rows.column_names}. Fix: check that this version's server wrote "
                        "the log under settings.predictions_path")
    entity_df = pa.table([rows.column(where[n]) for n in (*join_keys, *request)]
                         + [rows.column(TIME)], names=[*join_keys, *request, TIME])
    recomputed = store.get_historical_features(entity_df, plan.service,
                                               timestamp_field=TIME).to_arrow()
    served = pa.table([rows.column(where[n]) for n in (*join_keys, *features)]
                      + [rows.column(TIME), rows.column(REQUEST_ID)],
                      names=[*join_keys, *features, TIME, REQUEST_ID])
    reasons = {name: why for name in features if (why := incomparable(
        served.schema.field(name).type, recomputed.schema.field(name).type)) is not None}
    compared = compare_served(served, recomputed, keys=[*join_keys, TIME],
                              features=[f for f in features if f not in reasons],
                              tolerance=tolerance, examples=examples, context=[REQUEST_ID])
    return compared, reasons, owners


def logged_names(groups: Sequence[Sequence[str]]) -> list[dict[str, str]]:
    """The column each name is stored under in the prediction log, per group (entity keys,
    model inputs, other request fields: the log's order): a name already taken or reserved
    gets ``input__`` in front until it is free, as :mod:`headwater.inference.log` does."""
    from headwater.inference.log import RESERVED

    taken = set(_LOG_COLUMNS)
    out = []
    for group in groups:
        names = {}
        for name in group:
            column = name
            while column in taken or column in RESERVED:
                column = f"input__{column}"
            taken.add(column)
            names[name] = column
        out.append(names)
    return out


def _finding(subject: str, name: str, skew: FeatureSkew | None, reason: str | None, *,
             view: str, threshold: float, versions: tuple[int, ...],
             window: tuple[datetime, datetime]) -> Finding:
    details: dict[str, Any] = {"feature_view": view, "versions": list(versions)}
    if skew is not None:
        details.update({k: v for k, v in skew.to_dict().items() if k != "feature"})
    what = f"feature '{name}' (view '{view}')"
    if reason is not None or skew is None or skew.mismatch_rate is None:
        return Finding(CHECK, subject, name, None, threshold, True,
                       f"{what} could not be compared with its offline recompute: {reason}. "
                       "Fix: its type changed since it was served; retrain and redeploy the "
                       "model on the view as it is now", details={**details, "reason": reason},
                       window_start=window[0], window_end=window[1])
    rate = skew.mismatch_rate
    counts = (f"{skew.mismatches} of {skew.compared} served values ({rate:.2%}) differ from "
              f"the offline point-in-time recompute ({skew.missing_online} null online only, "
              f"{skew.missing_offline} null offline only)")
    if skew.both_null == skew.compared:
        message = (f"{what}: every served and recomputed value is null, so the comparison "
                   "proves nothing. Fix: check the view's data, ttl and materialization")
    elif rate > threshold:
        message = (f"{what}: {counts}, above the {threshold:.2%} threshold. Fix: check that "
                   "materialization or streaming keeps the online store up to date, that no "
                   "rows are pushed online only or backfilled offline later, and that the "
                   "view did not change since serving; the details show examples")
    else:
        message = f"{what}: {counts}, within the {threshold:.2%} threshold"
    return Finding(CHECK, subject, name, rate, threshold,
                   rate > threshold or skew.both_null == skew.compared, message,
                   details=details, window_start=window[0], window_end=window[1])
