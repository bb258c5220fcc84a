"""Pushed rows -> one validated Arrow table shaped like the offline engine's latest rows.

Rows come as a pandas or polars DataFrame, an Arrow table or record batch, or a list of
dicts (one per row; a key missing from a row is null), converted by
:func:`headwater.offline.frames.to_arrow` as entity frames are. The result has the view's join keys
(integers as int64, strings as string), ``__hw_ts`` and ``__hw_created`` (timestamp[us, UTC];
created is null when the rows do not carry the source's created column), then the view's
features in schema order, cast to their declared dtypes: the batch shape that
:func:`headwater.materialize.encode.encode_batch` encodes. An offline push also passes the
source's other columns (``extra``); they follow, as given, for
:func:`~headwater.streaming.parquet_append.source_table` to type.

Rules, each broken one a DataError naming the column and the fix:

* the columns are exactly the join keys, the source's ``timestamp_field``, the declared
  features and, optionally, the source's ``created_timestamp_field`` and the ``extra``
  columns;
* join keys are integers or strings, never null; the event time is never null;
* times follow ARCHITECTURE.md: timestamps with a zone are converted to UTC, naive ones
  (and naive ISO-8601 strings) are read as UTC, dates are midnight UTC, nanoseconds are
  truncated to microseconds; strings are parsed by the offline engine's own rules
  (:mod:`~headwater.offline.timestamps`), so a value that does not parse, or a column
  mixing zoned and naive values, is the same error as offline;
* feature values are cast without loss: integers and floats to numeric dtypes (a float
  with a fraction never becomes an integer, an out-of-range integer is refused), strings
  only to String, booleans only to Bool, lists to arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureView, Field
from headwater.errors import DataError
from headwater.offline.base import LATEST_CREATED, LATEST_TS
from headwater.offline.entity_frame import key_class
from headwater.offline.frames import to_arrow
from headwater.offline.timestamps import TimeKind, parse_strings, time_kind
from headwater.types import DType, Float32, Timestamp, from_micros, to_micros

if TYPE_CHECKING:
    import pyarrow as pa

UTC_MICROS_TZ = "UTC"


MAX_FUTURE = timedelta(minutes=5)
"""How far after the current time a pushed event time may lie (clock skew)."""

def prepare_rows(view: FeatureView, rows: Any, extra: Sequence[str] = (), *,
                 owner: str | None = None) -> pa.Table:
    """Validate ``rows`` against ``view`` and return them typed (see the module docstring).

    ``extra`` names further columns the rows may carry (the source's columns the view does
    not use); those present come last, untyped. ``owner`` is how errors name the push
    (default: ``push to feature view '<name>'``)."""
    import pyarrow as pa

    owner = owner or f"push to feature view '{view.name}'"
    table = to_arrow(rows, owner, dicts=True)
    source = view.batch_source
    names = table.column_names
    required = [*view.join_keys, source.timestamp_field, *view.feature_names]
    allowed = [*required, *([] if source.created_timestamp_field is None
                            else [source.created_timestamp_field]), *extra]
    missing = [n for n in required if n not in names]
    if missing:
        raise DataError(f"{owner}: missing column(s) {missing}. Fix: give every row the join "
                        f"keys, '{source.timestamp_field}' and every feature: {required}")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise DataError(f"{owner}: unknown column(s) {unknown}; the view takes {allowed}. "
                        "Fix: drop them, or add them to the view's schema and apply it")
    columns: dict[str, Any] = {}
    for key in view.join_keys:
        columns[key] = _join_key(table.column(key), key, owner)
    columns[LATEST_TS] = utc_micros(table.column(source.timestamp_field),
                             source.timestamp_field, owner)
    if columns[LATEST_TS].null_count:
        raise DataError(f"{owner}: column '{source.timestamp_field}' has null values. Fix: "
                        "give every row its event time")
    _check_not_future(columns[LATEST_TS], source.timestamp_field, owner)
    created = source.created_timestamp_field
    if created is not None and created in names:
        columns[LATEST_CREATED] = utc_micros(table.column(created), created, owner)
    else:
        columns[LATEST_CREATED] = pa.nulls(table.num_rows, pa.timestamp("us", UTC_MICROS_TZ))
    for field in view.features:
        columns[field.name] = cast_feature(table.column(field.name), field, owner)
    for name in extra:
        if name in names and name not in columns:
            columns[name] = _decoded(table.column(name))
    return pa.table(columns)


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _join_key(column: pa.ChunkedArray, name: str, owner: str) -> pa.ChunkedArray:
    import pyarrow as pa

    column = _decoded(column)
    if column.null_count:
        raise DataError(f"{owner}: join key '{name}' has null values. Fix: give every row "
                        "its key")
    kind = key_class(column.type)
    if kind is None:
        raise DataError(f"{owner}: join key '{name}' has type {column.type}. Fix: pass "
                        "join keys as integers or strings")
    return column.cast(pa.int64() if kind == "integer" else pa.string())


def utc_micros(column: pa.ChunkedArray, name: str, owner: str) -> pa.ChunkedArray:
    """A time column as timestamp[us, UTC] by the rules in the module docstring; strings
    go through the offline engine's own parser
    (:func:`~headwater.offline.timestamps.parse_strings`), so a push accepts and refuses
    exactly the strings a source or an entity frame does."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _decoded(column)
    utc = pa.timestamp("us", UTC_MICROS_TZ)
    kind = column.type
    if pa.types.is_null(kind):
        return column.cast(utc)
    if time_kind(kind) is TimeKind.STRING:
        canonical = canonical_times(column)
        if canonical is not None:
            return canonical
        return parse_strings(column, owner=owner, column=name)
    if pa.types.is_date(kind):
        return column.cast(utc)
    if not pa.types.is_timestamp(kind):
        raise DataError(f"{owner}: time column '{name}' has type {kind}. Fix: pass "
                        "timestamps, dates or ISO-8601 strings such as "
                        "'2024-01-01T12:00:00Z' (naive values are read as UTC)")
    if kind.tz is None:
        column = column.cast(pa.timestamp(kind.unit, UTC_MICROS_TZ))
    options = pc.CastOptions(utc, allow_time_truncate=True)
    return pc.cast(column, options=options)


CANONICAL_TIME = (r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}"
                  r"(\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])?$")
"""The ISO-8601 form that :func:`canonical_times` parses with Arrow: date, ``T`` or a space,
time to the second with up to 6 decimals, then ``Z``, a ``+hh:mm`` offset or nothing."""


def canonical_times(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Strings all in :data:`CANONICAL_TIME` form and all zoned (or all naive, read as UTC)
    as timestamp[us, UTC], parsed by Arrow's cast (a scan and a cast, where the engine's
    parser costs milliseconds per batch of stream events); None for any other column, which
    :func:`~headwater.offline.timestamps.parse_strings` then parses, or refuses. On this
    form both parsers give the same instants, and Arrow refuses what is not a real time
    (February 30th, 24:00): a test checks them against each other."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count == len(column):
        return None
    if not pc.all(pc.match_substring_regex(column, CANONICAL_TIME)).as_py():
        return None
    utc = pa.timestamp("us", UTC_MICROS_TZ)
    try:
        return column.cast(utc)  # every value zoned
    except pa.ArrowInvalid:
        pass
    try:
        return column.cast(pa.timestamp("us")).cast(utc)  # every value naive: UTC
    except pa.ArrowInvalid:
        return None  # mixed, or not a real time: the engine's parser says which


def cast_feature(column: pa.ChunkedArray, field: Field, owner: str) -> pa.ChunkedArray:
    """A feature column cast to its declared dtype without loss of meaning."""
    import pyarrow as pa

    column = _decoded(column)
    dtype = field.dtype
    if dtype == Timestamp:
        return utc_micros(column, field.name, owner)
    if not _castable(column.type, dtype):
        raise DataError(f"{owner}: feature '{field.name}' is declared {dtype!r} but the "
                        f"pushed column has type {column.type}. Fix: pass "
                        f"{_expected(dtype)} values for '{field.name}'")
    try:
        cast = column.cast(dtype.to_arrow())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"{owner}: feature '{field.name}' cannot be cast to {dtype!r} "
                        f"without loss ({exc}). Fix: pass {_expected(dtype)} values that "
                        f"fit {dtype!r} for '{field.name}'") from exc
    if dtype == Float32 and _infinities(cast) > _infinities(column):
        raise DataError(f"{owner}: feature '{field.name}' holds values beyond the Float32 "
                        f"range. Fix: declare it Float64, or pass smaller values")
    return cast


def _infinities(column: pa.ChunkedArray) -> int:
    import pyarrow.compute as pc
    import pyarrow.types as pat

    if not pat.is_floating(column.type):
        return 0
    return int(pc.sum(pc.is_inf(column)).as_py() or 0)


def _check_not_future(times: pa.ChunkedArray, name: str, owner: str) -> None:
    """Refuse event times beyond ``MAX_FUTURE`` from now: online, a value is served only
    from its event time on, and a stored record from far in the future would hide every
    real value of its entity until then."""
    import pyarrow as pa
    import pyarrow.compute as pc

    latest = pc.max(times.cast(pa.int64())).as_py()
    limit = to_micros(datetime.now(UTC) + MAX_FUTURE)
    if latest is not None and latest > limit:
        raise DataError(f"{owner}: column '{name}' holds {from_micros(latest)}, more than "
                        f"{MAX_FUTURE} after the current time. Fix: push events when they "
                        "happen, with their real event times")


def _castable(arrow_type: pa.DataType, dtype: DType) -> bool:
    import pyarrow.types as pat

    if pat.is_null(arrow_type):
        return True
    if dtype.inner is not None:
        if not (pat.is_list(arrow_type) or pat.is_large_list(arrow_type)
                or pat.is_fixed_size_list(arrow_type)):
            return False
        return dtype.inner == Timestamp or _castable(arrow_type.value_type, dtype.inner)
    if dtype.is_numeric:
        return bool(pat.is_integer(arrow_type) or pat.is_floating(arrow_type)
                    or pat.is_decimal(arrow_type))
    if dtype.name == "string":
        return bool(pat.is_string(arrow_type) or pat.is_large_string(arrow_type))
    return dtype.name == "bool" and bool(pat.is_boolean(arrow_type))


def _expected(dtype: DType) -> str:
    if dtype.inner is not None:
        return f"lists of {_expected(dtype.inner)}"
    if dtype.is_numeric:
        return "integer" if dtype.name.startswith("int") else "numeric"
    return {"string": "string", "bool": "boolean"}.get(dtype.name, "timestamp")
