"""Data quality checks of a feature view over a time window: schema and types, null rates,
value ranges, volume, and freshness against an SLO.

:func:`check_quality` is the pure computation over a table (pandas, polars or Arrow);
:func:`check_feature_view` reads a registered feature view's rows with event time in
``[start, end)`` from its batch source through the store's offline engine and checks them
against the view's declared schema. Both return a :class:`QualityResult` whose findings are
:class:`~headwater.monitoring.findings.Finding` s, one per check and column, in this order
(``subject`` is ``feature_view:<name>`` for a view; bounds are in
:mod:`~headwater.monitoring.quality_rules`):

* ``quality.schema``, per expected column: ``value`` 1.0 when the column's type can be
  served as the declared dtype (:func:`headwater.types.compatible`: integers widen to
  floats), 0.0 when it cannot (the message names both types), None when the column is
  missing; threshold 1.0. A failure is ``critical``. Columns of the data that are not
  expected are ignored (a source may hold more than a view uses). For a feature view, the
  schema findings of columns the engine cannot read come first and cover the whole source,
  not the window: a type Headwater has no dtype for, and, in a Parquet source whose files
  disagree, a column that some file lacks or holds in a type not servable as declared
  (the message names the type, how many files and the first of them).
* ``quality.volume`` (target ``""``): the number of rows in the window. **An empty window
  is a failed volume finding with value 0, not an error**; the null-rate and range findings
  are then left out (nothing was measured).
* ``quality.freshness`` (target ``""``): seconds from the latest event before ``end`` to
  ``end``. With an SLO it fails above ``rules.freshness``, and with value None when there is
  no such event; without one it is reported (never failed) when there is an event.
* ``quality.null_rate``, per present column: nulls (and NaN) over the window's rows. **A
  column that is null in every row fails** whatever the threshold.
* ``quality.range``, per numeric column with a range and at least one non-null value: the
  fraction of non-null values outside ``[low, high]`` (infinities count as outside a finite
  bound). Columns whose type failed the schema check are not range checked.

Bad input raises: ``start >= end`` or a missing or non-time timestamp column is a
DataError; so is a rule naming a column that is not checked.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater.definitions import Field
from headwater.definitions.base import RESERVED_PREFIX
from headwater.errors import DataError
from headwater.monitoring.findings import Finding, HasFindings
from headwater.monitoring.profile import Profile, profile
from headwater.monitoring.quality_checks import (
    FRESHNESS,
    NULL_RATE,
    RANGE,
    SCHEMA,
    VOLUME,
    dtype_of,
    freshness,
    missing,
    null_rate,
    schema_finding,
    schema_findings,
    value_range,
    volume,
)
from headwater.monitoring.quality_rules import QualityRules
from headwater.types import DType, compatible, from_arrow, to_utc

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.definitions import Source
    from headwater.store import FeatureStore

Schema = Mapping[str, DType] | Sequence[Field]


@dataclass(frozen=True)
class QualityResult(HasFindings):
    """The findings of one quality check of ``subject`` over ``[window_start,
    window_end)``; ``rows`` is the window's row count and ``latest_event`` the latest event
    time before ``window_end`` (None when there is none)."""

    subject: str
    window_start: datetime
    window_end: datetime
    rows: int
    latest_event: datetime | None
    findings: tuple[Finding, ...]


    def to_dict(self) -> dict[str, Any]:
        """JSON-able: datetimes as ISO 8601 strings, findings as ``Finding.to_dict``."""
        latest = self.latest_event
        return {"subject": self.subject, "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(), "rows": self.rows,
                "latest_event": None if latest is None else latest.isoformat(),
                "findings": [f.to_dict() for f in self.findings]}


def check_quality(table: Any, *, subject: str, schema: Schema | None = None,
                  rules: QualityRules | None = None, timestamp_column: str,
                  start: datetime, end: datetime,
                  reference: Profile | Any | None = None) -> QualityResult:
    """Check the rows of ``table`` with ``start <= timestamp_column < end`` (naive times
    are UTC) against ``schema`` (column -> dtype, or Fields; ``rules.schema`` wins; default
    every other column of the table with its own dtype) and ``rules`` (default
    ``QualityRules()``). Freshness looks at every row of ``table`` before ``end``, so a
    caller may pass earlier rows to measure it past the window's start. ``reference`` (a
    Profile, or a frame that is profiled) sets the default null-rate and range bounds.
    Pass Arrow to keep types exact: pandas turns an integer column with nulls into floats."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from headwater.offline.frames import to_arrow

    rules = rules or QualityRules()
    start, end = _window(start, end, subject)
    data = to_arrow(table, f"check_quality of {subject}")
    expected = _expected(rules.schema if rules.schema is not None else schema, data,
                         timestamp_column, subject)
    rules.check_columns(expected, subject)
    ref = _reference(reference)
    utc = pa.timestamp("us", "UTC")
    times = _times(data, timestamp_column, subject)
    inside = pc.and_(pc.greater_equal(times, pa.scalar(start, utc)),
                     pc.less(times, pa.scalar(end, utc)))
    window = data.filter(inside)
    latest = pc.max(times.filter(pc.less(times, pa.scalar(end, utc)))).as_py()
    at = {"subject": subject, "window_start": start, "window_end": end}
    findings, typed = schema_findings(window, expected, at)
    findings.append(volume(window.num_rows, rules, ref, null_times=times.null_count,
                            column=timestamp_column, at=at))
    if latest is not None or rules.freshness is not None:
        findings.append(freshness(latest, rules, timestamp_column, at))
    if window.num_rows:
        for name in expected:
            if name in window.column_names:
                findings.append(null_rate(window.column(name), name, rules, ref, at))
        for name in typed:
            finding = value_range(window.column(name), name, rules, ref, at)
            if finding is not None:
                findings.append(finding)
    return QualityResult(subject, start, end, window.num_rows, latest, tuple(findings))


def check_feature_view(store: FeatureStore, view_name: str, *, start: datetime,
                       end: datetime, rules: QualityRules | None = None,
                       reference: Profile | Any | None = None) -> QualityResult:
    """Check the rows of feature view ``view_name`` with event time in ``[start, end)``
    (read from its batch source by ``store.offline.read_events``, with the types the source
    stores) against its declared schema (``rules.schema`` wins), as :func:`check_quality`.
    With a freshness SLO the rows since ``end - rules.freshness`` are read too, so freshness
    is measured even when the window is shorter than the SLO. A column the engine cannot
    read (module docstring) fails its schema check and is not read, so the other columns
    are still checked. NotFoundError for an unknown view; DataError for ``start >= end``
    or an unreadable source."""
    from headwater.offline.base import EVENT_SEQ, LATEST_CREATED, LATEST_TS

    rules = rules or QualityRules()
    subject = f"feature_view:{view_name}"
    start, end = _window(start, end, subject)
    view = store.get_feature_view(view_name)
    source = view.batch_source
    raw = store.offline.source_schema(source)
    expected = (dict(rules.schema) if rules.schema is not None
                else {f.name: f.dtype for f in view.schema} if view.schema is not None
                else {n: d for n in raw.names if n not in view.join_keys
                      and n not in source.time_columns() and not n.startswith(RESERVED_PREFIX)
                      and (d := from_arrow(raw.field(n).type)) is not None})
    rules.check_columns(expected, subject)
    for name in source.time_columns():
        if name in expected:
            raise DataError(f"{subject}: QualityRules.schema names the time column '{name}'. "
                            "Fix: leave it out; freshness checks the event time")
    at = {"subject": subject, "window_start": start, "window_end": end}
    early = {n: schema_finding(n, expected[n], None, str(raw.field(n).type), at)
             for n in expected if n in raw.names and dtype_of(raw.field(n).type) is None}
    early |= {n: f for n, f in _file_findings(store, source, expected, at).items()
              if n not in early}
    fields = tuple(Field(n, d) for n in expected if n in raw.names and n not in early
                   and n not in view.join_keys and (d := dtype_of(raw.field(n).type)))
    reading = dataclasses.replace(view, schema=fields or None, aggregations=())
    since = start if rules.freshness is None else min(start, end - rules.freshness)
    table = store.offline.read_events(reading, since, end).read_all().drop_columns(
        [LATEST_CREATED, EVENT_SEQ])
    table = table.rename_columns([source.timestamp_field if n == LATEST_TS else n
                                  for n in table.column_names])
    result = check_quality(table, subject=subject, rules=_without(rules, early),
                           schema={n: d for n, d in expected.items() if n not in early},
                           timestamp_column=source.timestamp_field, start=start, end=end,
                           reference=reference)
    return dataclasses.replace(result, findings=(*early.values(), *result.findings))


def _file_findings(store: FeatureStore, source: Source, expected: Mapping[str, DType],
                   at: Mapping[str, Any]) -> dict[str, Finding]:
    """For a Parquet FileSource whose files disagree on an expected column: the failed
    schema finding of the column, when some file lacks it or holds a type that cannot be
    served as declared. DuckDB reads the files with the first one's schema, so no window
    could read such a column; the types come from each file's footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from headwater.definitions import FileSource
    from headwater.offline.source_reader import SourceReader

    if not isinstance(source, FileSource) or source.format != "parquet":
        return {}
    files = SourceReader(store.settings).files(source)
    schemas = []
    for path in files:
        try:
            schemas.append(pq.read_schema(path))
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{source.label()}: cannot read the Parquet footer of {path} "
                            f"({exc}). Fix: replace or remove the file") from exc
    found: dict[str, Finding] = {}
    for name, declared in expected.items():
        types = [s.field(name).type if name in s.names else None for s in schemas]
        if len(set(types)) < 2:
            continue  # every file agrees: the window's read shows the type
        lacking = [f for f, t in zip(files, types, strict=True) if t is None]
        bad = [(f, t) for f, t in zip(files, types, strict=True) if t is not None
               and not ((d := dtype_of(t)) is not None and compatible(declared, d))]
        if lacking:
            found[name] = missing(name, declared, f"{len(lacking)} of {len(files)} files of "
                                  f"{source.label()} (first: {_relative(store, lacking[0])})",
                                  at)
        elif bad:
            path, arrow_type = bad[0]
            found[name] = schema_finding(
                name, declared, dtype_of(arrow_type), str(arrow_type), at,
                where=f" in {len(bad)} of {len(files)} files of {source.label()} (first: "
                f"{_relative(store, path)})")
    return found


def _relative(store: FeatureStore, path: str) -> str:
    return os.path.relpath(path, store.repo_path)


def _window(start: datetime, end: datetime, subject: str) -> tuple[datetime, datetime]:
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise DataError(f"{subject}: start and end must be datetimes, got {start!r} and "
                        f"{end!r}. Fix: pass datetime(2024, 1, 1, tzinfo=timezone.utc)")
    start, end = to_utc(start), to_utc(end)
    if start >= end:
        raise DataError(f"{subject}: the window [{start.isoformat()}, {end.isoformat()}) is "
                        "empty: start must be before end. Fix: swap them, or widen the window")
    return start, end


def _expected(schema: Schema | None, data: pa.Table, timestamp_column: str,
              subject: str) -> dict[str, DType]:
    if schema is None:
        return {n: d for n in data.column_names if n != timestamp_column
                and (d := dtype_of(data.schema.field(n).type)) is not None}
    expected = dict(schema) if isinstance(schema, Mapping) else {}
    if not isinstance(schema, Mapping):
        for item in schema:
            if not isinstance(item, Field):
                raise DataError(f"{subject}: schema holds {item!r}, not a hw.Field. Fix: "
                                "pass {column: dtype} or a list of hw.Field")
            expected[item.name] = item.dtype
    for name, dtype in expected.items():
        if not isinstance(dtype, DType):
            raise DataError(f"{subject}: schema maps column '{name}' to {dtype!r}, not a "
                            "dtype. Fix: use a Headwater dtype such as hw.Float64")
    if timestamp_column in expected:
        raise DataError(f"{subject}: the schema names the timestamp column "
                        f"'{timestamp_column}'. Fix: leave it out; freshness checks it")
    return expected


def _reference(reference: Profile | Any | None) -> Profile | None:
    if reference is None or isinstance(reference, Profile):
        return reference
    return profile(reference)


def _times(data: pa.Table, column: str, subject: str) -> pa.ChunkedArray:
    """The timestamp column as UTC microseconds (naive values are UTC, nanoseconds are
    truncated, dates are midnight UTC)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pat

    if column not in data.column_names:
        raise DataError(f"{subject}: no timestamp column '{column}' in the data (it has "
                        f"{data.column_names}). Fix: name the event-time column")
    values = data.column(column)
    if not (pat.is_timestamp(values.type) or pat.is_date(values.type)):
        raise DataError(f"{subject}: timestamp column '{column}' has type {values.type}. "
                        "Fix: pass a timestamp or date column")
    return pc.cast(values, pa.timestamp("us", "UTC"), safe=False)


def _without(rules: QualityRules, columns: Mapping[str, Any]) -> QualityRules:
    """``rules`` without its schema and per-column rules of ``columns`` (checked apart)."""
    rates = rules.max_null_rate
    if isinstance(rates, Mapping):
        rates = {n: r for n, r in rates.items() if n not in columns}
    return dataclasses.replace(
        rules, schema=None, max_null_rate=rates,
        ranges={n: b for n, b in rules.ranges.items() if n not in columns})


__all__ = ["FRESHNESS", "NULL_RATE", "RANGE", "SCHEMA", "VOLUME", "QualityResult",
           "QualityRules", "check_feature_view", "check_quality"]
