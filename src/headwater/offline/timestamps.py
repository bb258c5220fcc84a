"""Time columns as UTC instants, inside DuckDB.

Headwater compares every time (entity time, event time, created time) as a UTC instant
(DuckDB ``TIMESTAMPTZ``, microsecond precision), whatever the column held:

* a timestamp with a zone is converted to UTC;
* a naive timestamp is read as UTC: DuckDB sessions run with ``TimeZone=UTC``, so the
  machine's local zone is never used;
* a date is midnight UTC;
* a string is parsed as ISO-8601 (``2024-01-01T12:00:00Z``, ``2024-01-01 12:00:00+02:00``,
  ``2024-01-01``); values with a zone designator are converted, naive ones are read as UTC.
  A string column holding unparseable values, or mixing zone-qualified and naive values, is
  a :class:`~headwater.errors.DataError` naming the column and the fix.

Nanosecond timestamps are truncated to microseconds, the precision of the ``Timestamp``
dtype.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from headwater.errors import DataError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

INSTANT = "TIMESTAMPTZ"
"""The DuckDB type every time is compared as."""

ZONE_SUFFIX = r":\d{2}(\.\d+)?\s*(Z|z|[+-]\d{2}(:?\d{2})?|[A-Za-z][A-Za-z0-9_/+-]*)$"
"""A regular expression (RE2 and Python) matching a zone designator after a time of day:
Z, +02, +0200, +02:00, or a zone name (UTC, Europe/Paris). A bare date such as 2024-01-01
ends in digits after '-', so the pattern insists on the time's ':MM' first."""


class TimeKind(Enum):
    """How a column's values become UTC instants."""

    INSTANT = "timestamp with a zone"
    NAIVE = "naive timestamp"
    DATE = "date"
    STRING = "string"


def time_kind(arrow_type: pa.DataType) -> TimeKind | None:
    """The kind of a time column of this Arrow type, or None when it cannot hold times."""
    import pyarrow.types as pat

    if pat.is_dictionary(arrow_type):
        return time_kind(arrow_type.value_type)
    if pat.is_timestamp(arrow_type):
        return TimeKind.INSTANT if arrow_type.tz is not None else TimeKind.NAIVE
    if pat.is_date(arrow_type):
        return TimeKind.DATE
    if pat.is_string(arrow_type) or pat.is_large_string(arrow_type) or (
        pat.is_string_view(arrow_type)
    ):
        return TimeKind.STRING
    return None


def as_instant(expr: str, kind: TimeKind) -> str:
    """SQL turning ``expr`` (a column of ``kind``) into a UTC ``TIMESTAMPTZ``.

    Strings use ``TRY_CAST``; call :func:`check_strings` first so that a value that does not
    parse is reported instead of silently becoming null."""
    if kind is TimeKind.STRING:
        return f"TRY_CAST({expr} AS {INSTANT})"
    return f"CAST({expr} AS {INSTANT})"


def check_strings(
    con: duckdb.DuckDBPyConnection,
    from_sql: str,
    params: dict[str, Any],
    column_sql: str,
    *,
    owner: str,
    column: str,
) -> None:
    """Scan a string time column once; raise DataError if a value does not parse or the
    column mixes zone-qualified and naive values.

    ``from_sql`` is a table expression (with ``params``) and ``column_sql`` the quoted column;
    ``owner`` and ``column`` name them in the message (``entity frame``, ``'event_time'``)."""
    query = f"""
        SELECT
            any_value(v) FILTER (WHERE TRY_CAST(v AS {INSTANT}) IS NULL),
            any_value(v) FILTER (WHERE regexp_matches(v, $__hw_zone)),
            any_value(v) FILTER (WHERE NOT regexp_matches(v, $__hw_zone))
        FROM (SELECT CAST({column_sql} AS VARCHAR) AS v FROM {from_sql}) AS __hw_values
        WHERE v IS NOT NULL
    """
    params = {**params, "__hw_zone": ZONE_SUFFIX}
    bad, zoned, naive = con.sql(query, params=params).fetchall()[0]
    if bad is not None:
        raise DataError(
            f"{owner}: time column '{column}' holds a value that is not an ISO-8601 "
            f"timestamp: {bad!r}. Fix: convert the column to a timestamp type, or write "
            "values such as '2024-01-01T12:00:00Z' or '2024-01-01 12:00:00'"
        )
    if zoned is not None and naive is not None:
        raise DataError(
            f"{owner}: time column '{column}' mixes values with a time zone ({zoned!r}) and "
            f"values without one ({naive!r}). Fix: give every value a zone (e.g. a 'Z' "
            "suffix for UTC) or none (naive values are read as UTC)"
        )
