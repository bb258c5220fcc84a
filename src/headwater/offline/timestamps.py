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

String times are parsed by DuckDB's cast to ``TIMESTAMPTZ`` (with the ICU zone database
built into the wheel, so zone names work offline) and checked by :func:`check_strings`.
Data that never passes through the engine (pushed rows) is parsed by :func:`parse_strings`,
which runs the same SQL. One exception, for the stream hot path: strings all in the one
strict form ``YYYY-MM-DD[T ]HH:MM:SS[.ffffff][Z|+HH:MM]`` go through Arrow's cast
(:func:`headwater.streaming.push_rows.canonical_times`); on that form the two parsers agree,
which a property test checks.
"""

from __future__ import annotations

import functools
import threading
from enum import Enum
from typing import TYPE_CHECKING, Any

from headwater.errors import DataError
from headwater.offline.sql_names import quote, unique_name

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


_parser_lock = threading.Lock()


def parse_strings(values: pa.ChunkedArray | pa.Array, *, owner: str,
                  column: str) -> pa.ChunkedArray:
    """ISO-8601 strings as ``timestamp[us, UTC]``, by the engine's own rules: the same
    :func:`check_strings` scan (DataError for a value that does not parse or for mixed
    zoned and naive values, naming ``owner`` and ``column``) and the same
    :func:`as_instant` cast. Nulls stay null; the order of the values is kept."""
    import pyarrow as pa

    cursor = _parser_cursor()
    name = unique_name("strings")
    try:
        cursor.register(name, pa.table({"v": values}))
        check_strings(cursor, quote(name), {}, quote("v"), owner=owner, column=column)
        parsed = cursor.sql(f"SELECT {as_instant(quote('v'), TimeKind.STRING)} AS v "
                            f"FROM {quote(name)}").to_arrow_table()
    finally:
        cursor.close()
    return parsed.column("v").cast(pa.timestamp("us", "UTC"))


def _parser_cursor() -> duckdb.DuckDBPyConnection:
    """A cursor (a few milliseconds; a new database costs tens) on the in-memory database
    kept for :func:`parse_strings`. Sessions run in UTC, so naive strings are read as UTC."""
    with _parser_lock:  # the database is made once, and DuckDB hands out cursors one by one
        cursor = _parser_database().cursor()
    cursor.sql("SET TimeZone = 'UTC'")
    return cursor


@functools.cache
def _parser_database() -> duckdb.DuckDBPyConnection:
    """The parser's database: never loads extensions (ICU is built in); keeps insertion
    order, so values come back in the order given."""
    import duckdb

    database = duckdb.connect(":memory:", config={
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "preserve_insertion_order": True,
    })
    database.sql("SET GLOBAL TimeZone = 'UTC'")
    return database
