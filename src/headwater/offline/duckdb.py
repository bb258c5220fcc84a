"""The DuckDB offline engine: point-in-time correct training frames over files and SQL.

One in-memory DuckDB database per engine, configured from ``settings.offline``:
``memory_limit``, ``threads`` and ``temp_directory`` (default ``.headwater/tmp`` in the repo)
so that large joins spill to disk instead of failing. Sessions run with ``TimeZone=UTC`` and
never install or load extensions at run time. Each retrieval runs on its own cursor, so jobs
can be read concurrently, and streams its result as Arrow record batches.

This module only wires the steps together: the join is in :mod:`~headwater.offline.pit_join`
(with its tie-free key in :mod:`~headwater.offline.order_key`), source reading in
:mod:`~headwater.offline.source_reader` and :mod:`~headwater.offline.view_rows`, the entity
frame in :mod:`~headwater.offline.entity_frame` and :mod:`~headwater.offline.entity_query`,
the output stream in :mod:`~headwater.offline.result_stream`, and the latest rows for
materialization in :mod:`~headwater.offline.latest`. Time rules are in
:mod:`~headwater.offline.timestamps`: naive timestamps, in the entity frame or in a source,
are read as UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from headwater.config import Settings
from headwater.definitions import FeatureView, Source
from headwater.errors import DataError, HeadwaterError
from headwater.offline import aggregate, entity_query, events, latest, order_key
from headwater.offline.entity_frame import (
    ME,
    EntityFrame,
    check_frame,
    find_time_column,
    narrow_table,
)
from headwater.offline.feature_cast import cast_batches
from headwater.offline.frames import to_arrow
from headwater.offline.pit_join import (
    TimeKeyedJoin,
    ViewJoin,
    build_query,
    rows_clause,
    time_bounds,
)
from headwater.offline.result_stream import output_schema, stitch
from headwater.offline.retrieval import RetrievalJob
from headwater.offline.source_reader import SourceReader
from headwater.offline.sql_names import TIME, quote, unique_name
from headwater.offline.timestamps import TimeKind, as_instant, check_strings, time_kind
from headwater.offline.view_rows import read_view
from headwater.types import to_utc

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.offline.base import ViewRequest

DEFAULT_BATCH_ROWS = 131_072


@dataclass(frozen=True)
class _Plan:
    """A validated retrieval, run each time its job is read."""

    requests: tuple[ViewRequest, ...]
    source_schemas: tuple[pa.Schema, ...]
    table: pa.Table | None  # the entity rows, or None when they come from ``query``
    query: str | None
    tables: Mapping[str, Source]
    time_column: str
    time_kind: TimeKind


class DuckDBEngine:
    """The default offline engine (see the module docstring for its configuration).

    ``batch_size`` is the number of rows per streamed record batch."""

    def __init__(self, settings: Settings, *, batch_size: int = DEFAULT_BATCH_ROWS) -> None:
        self._batch_size = batch_size
        self._reader = SourceReader(settings)
        offline = settings.offline
        temp = Path(offline.temp_directory) if offline.temp_directory else (
            settings.state_dir / "tmp")
        temp = temp if temp.is_absolute() else settings.repo_path / temp
        temp.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "temp_directory": str(temp),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            # CSV and SQL sources are copied into tables whose rowid is their ingestion
            # order; that holds only while DuckDB preserves insertion order (its default)
            "preserve_insertion_order": True,
        }
        if offline.memory_limit is not None:
            config["memory_limit"] = offline.memory_limit
        if offline.threads is not None:
            config["threads"] = offline.threads
        self._db = duckdb.connect(":memory:", config=config)
        self._db.sql("SET GLOBAL TimeZone = 'UTC'")

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = self._db.cursor()
        cursor.sql("SET TimeZone = 'UTC'")
        return cursor

    def source_schema(self, source: Source) -> pa.Schema:
        """The Arrow schema of ``source``'s rows, from file metadata or a ``LIMIT 0`` query.

        DataError for a missing path or unreadable data, ConfigError for an unknown
        connection name, StoreUnavailableError when its database cannot be reached."""
        cursor = self._cursor()
        try:
            return self._reader.schema(cursor, source)
        finally:
            cursor.close()

    def get_historical_features(
        self,
        entity_df: Any,
        requests: Sequence[ViewRequest],
        *,
        timestamp_field: str | None = None,
        tables: Mapping[str, Source] | None = None,
    ) -> RetrievalJob:
        """Point-in-time join of each request's features to the entity rows (see
        :mod:`~headwater.offline.pit_join` for the rule).

        The entity frame, its time column, its join keys (present, and of the sources' key
        types) and the output names are checked now, reading only schemas; DataError names
        the problem and the fix. The join runs each time the job is read and streams."""
        tables = dict(tables or {})
        cursor = self._cursor()
        try:
            schemas = tuple(self._reader.schema(cursor, r.view.batch_source) for r in requests)
            if isinstance(entity_df, str):
                table = None
                schema = entity_query.schema(cursor, self._reader, entity_df, tables)
            else:
                table = to_arrow(entity_df, ME, also=("a SQL query string",))
                schema = table.schema
        finally:
            cursor.close()
        time_column, kind = find_time_column(schema, timestamp_field)
        check_frame(schema, requests, schemas)
        plan = _Plan(tuple(requests), schemas, table,
                     entity_df if isinstance(entity_df, str) else None, tables, time_column, kind)
        return RetrievalJob(partial(self._open, plan))

    def latest_rows(self, view: FeatureView, start: datetime,
                    end: datetime) -> pa.RecordBatchReader:
        """Per entity, the row with ``start <= ts <= end`` that the point-in-time rule picks
        at ``end``, streamed in batches (see :mod:`~headwater.offline.latest` for the
        columns). Naive ``start``/``end`` are read as UTC; the view's ttl is not applied
        (online reads apply it)."""
        import pyarrow as pa

        start, end = to_utc(start), to_utc(end)
        cursor = self._cursor()
        with _close_on_error(cursor):
            schema = self._reader.schema(cursor, view.batch_source)
            rows = read_view(cursor, self._reader, view, view.features, schema, until=end,
                             tag="__hw_s0")
            order = order_key.choose(cursor, latest.rows_clause(rows),
                                     latest.bounds(rows, start, end), ts=rows.ts,
                                     created=rows.created, order=rows.scan.order,
                                     entity_range=(start, end), name="__hw_k0")
            sql, params = latest.latest_query(view, rows, order, start, end)
            reader = _duckdb_errors(cursor.sql(sql, params=params).to_arrow_reader,
                                    self._batch_size)
            out = latest.output_schema(view, reader.schema)
        return pa.RecordBatchReader.from_batches(
            out, cast_batches(_checked_reader(reader), out, view=view.name,
                              values=set(view.feature_names), close=cursor.close))

    def read_events(self, view: FeatureView, start: datetime,
                    end: datetime) -> pa.RecordBatchReader:
        """The view's events with ``start <= ts < end`` in ingestion order, streamed in
        batches (see :mod:`~headwater.offline.events` for the columns and ``__hw_seq``).
        Naive ``start``/``end`` are read as UTC."""
        import pyarrow as pa

        start, end = to_utc(start), to_utc(end)
        cursor = self._cursor()
        with _close_on_error(cursor):
            schema = self._reader.schema(cursor, view.batch_source)
            rows = read_view(cursor, self._reader, view, events.fields(view), schema,
                             until=end, tag="__hw_s0")
            sql, params = events.events_query(view, rows, start, end)
            reader = _duckdb_errors(cursor.sql(sql, params=params).to_arrow_reader,
                                    self._batch_size)
            out = events.output_schema(view, reader.schema)
        return pa.RecordBatchReader.from_batches(
            out, cast_batches(_checked_reader(reader), out, view=view.name,
                              values={f.name for f in events.fields(view)}, close=cursor.close))

    def read_source(self, source: Source, columns: Sequence[str] | None = None) -> pa.Table:
        """All rows of ``source`` (``columns`` only, in that order, when given) in ingestion
        order, its time columns as ``timestamp[us, UTC]`` (naive values are UTC, strings
        parsed and checked as the join does). DataError names missing columns."""
        import pyarrow as pa

        cursor = self._cursor()
        try:
            schema = self._reader.schema(cursor, source)
            wanted = list(dict.fromkeys(schema.names if columns is None else columns))
            missing = [c for c in wanted if c not in schema.names]
            if missing:
                raise DataError(f"{source.label()}: no column(s) {missing}; its columns are "
                                f"{schema.names}. Fix: add them to the source, or correct "
                                "the names")
            scan = self._reader.scan(cursor, source, schema, wanted, until=None,
                                     tag="__hw_r0")
            selects = []
            times = [c for c in source.time_columns() if c in wanted]
            for column in wanted:
                if column not in times:
                    selects.append(quote(column))
                    continue
                kind = time_kind(scan.schema.field(column).type)
                if kind is None:
                    raise DataError(
                        f"{source.label()}: time column '{column}' has type "
                        f"{scan.schema.field(column).type}. Fix: use a timestamp, date or "
                        "ISO-8601 string column")
                if kind is TimeKind.STRING:
                    check_strings(cursor, scan.from_sql, scan.params, quote(column),
                                  owner=source.label(), column=column)
                selects.append(f"{as_instant(quote(column), kind)} AS {quote(column)}")
            sql = (f"SELECT {', '.join(selects)} FROM {scan.from_sql} "
                   f"ORDER BY {', '.join(scan.order)}")
            table: pa.Table = _duckdb_errors(
                lambda: cursor.sql(sql, params=scan.params).to_arrow_table())
        finally:
            cursor.close()
        utc = pa.timestamp("us", "UTC")
        for column in times:
            index = table.schema.get_field_index(column)
            if table.schema.field(index).type != utc:
                table = table.set_column(index, column, table.column(index).cast(utc))
        return table

    def latest_time(self, source: Source) -> datetime | None:
        """The greatest event time (``timestamp_field``) of ``source``'s rows, in UTC, or
        None when it has none: one ``max`` over the source, no sort and no rows returned
        (freshness on every page of the dashboard). DataError as :meth:`read_source`."""
        cursor = self._cursor()
        try:
            schema = self._reader.schema(cursor, source)
            column = source.timestamp_field
            if column not in schema.names:
                raise DataError(f"{source.label()}: no column '{column}'; its columns are "
                                f"{schema.names}. Fix: correct timestamp_field")
            scan = self._reader.scan(cursor, source, schema, [column], until=None,
                                     tag="__hw_r0")
            kind = time_kind(scan.schema.field(column).type)
            if kind is None:
                raise DataError(f"{source.label()}: time column '{column}' has type "
                                f"{scan.schema.field(column).type}. Fix: use a timestamp, "
                                "date or ISO-8601 string column")
            if kind is TimeKind.STRING:
                check_strings(cursor, scan.from_sql, scan.params, quote(column),
                              owner=source.label(), column=column)
            sql = (f"SELECT max({as_instant(quote(column), kind)}) FROM {scan.from_sql}")
            row = _duckdb_errors(lambda: cursor.execute(sql, scan.params).fetchone())
        finally:
            cursor.close()
        value = None if row is None else row[0]
        return to_utc(value) if isinstance(value, datetime) else None

    def close(self) -> None:
        """Close the DuckDB database; jobs cannot be read afterwards."""
        self._db.close()

    # -- running a retrieval -------------------------------------------------------------

    def _open(self, plan: _Plan) -> pa.RecordBatchReader:
        import pyarrow as pa

        cursor = self._cursor()
        with _close_on_error(cursor):
            table = plan.table if plan.table is not None else self._run_query(cursor, plan)
            frame = EntityFrame(table, plan.time_column, plan.time_kind)
            entity = unique_name("entity")
            keys = [k for r in plan.requests for k in r.view.join_keys]
            cursor.register(entity, narrow_table(frame, keys))
            if frame.time_kind is TimeKind.STRING:
                check_strings(cursor, quote(entity), {}, quote(TIME), owner=ME,
                              column=frame.time_column)
            earliest, latest = self._time_range(cursor, entity, frame.time_kind)
            joins = [self._view_join(cursor, i, r, s, (earliest, latest))
                     for i, (r, s) in enumerate(zip(plan.requests, plan.source_schemas,
                                                    strict=True))]
            sql, params = build_query(entity, frame.time_kind, joins, earliest, latest)
            reader = _duckdb_errors(cursor.sql(sql, params=params).to_arrow_reader,
                                    self._batch_size)
            names = [n for r in plan.requests for n in r.output_names]
            types = [f.dtype.to_arrow() for r in plan.requests for f in r.features]
            schema = output_schema(table.schema, names, types)
            features = [(r.view.name, f.name) for r in plan.requests for f in r.features]
        batches = stitch(table, _checked(reader), schema, features, cursor.close)
        return pa.RecordBatchReader.from_batches(schema, batches)

    def _run_query(self, cursor: duckdb.DuckDBPyConnection, plan: _Plan) -> pa.Table:
        query = plan.query or ""
        sql, params = entity_query.wrapped(cursor, self._reader, query, plan.tables, fetch=True)
        return entity_query.run(cursor, sql, params, list(plan.tables))

    @staticmethod
    def _time_range(cursor: duckdb.DuckDBPyConnection, entity: str,
                    kind: TimeKind) -> tuple[datetime | None, datetime | None]:
        instant = as_instant(quote(TIME), kind)
        rows = cursor.sql(f"SELECT min({instant}), max({instant}) FROM {quote(entity)}").fetchall()
        return rows[0][0], rows[0][1]

    def _view_join(self, cursor: duckdb.DuckDBPyConnection, index: int, request: ViewRequest,
                   schema: pa.Schema,
                   entity_range: tuple[datetime | None, datetime | None],
                   ) -> ViewJoin | TimeKeyedJoin:
        view = request.view
        if view.is_aggregated:
            fields = aggregate.input_fields(view, aggregate.requested(view, request.features))
            rows = read_view(cursor, self._reader, view, fields, schema,
                             until=entity_range[1], tag=f"__hw_s{index}")
            return aggregate.aggregate_join(index, view, request.features, rows, entity_range)
        rows = read_view(cursor, self._reader, view, request.features, schema,
                         until=entity_range[1], tag=f"__hw_s{index}")
        clause = rows_clause(rows.scan, rows.ts, index, view.ttl)
        bounds = {**rows.scan.params, **time_bounds(index, view.ttl, *entity_range)}
        order = order_key.choose(cursor, clause, bounds, ts=rows.ts, created=rows.created,
                                 order=rows.scan.order, entity_range=entity_range,
                                 name=f"__hw_k{index}")
        return ViewJoin(index, view.join_keys, rows.scan, rows.ts, order, rows.features,
                        view.ttl)


def _duckdb_errors(call: Any, *args: Any) -> Any:
    """Run a DuckDB call, turning its data and resource errors into Headwater's."""
    try:
        return call(*args)
    except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
        raise DataError(f"the point-in-time join failed on the data ({_line(exc)}). Fix: "
                        "check the sources' time and key columns") from exc
    except duckdb.OutOfMemoryException as exc:
        raise HeadwaterError(
            f"DuckDB ran out of memory ({_line(exc)}). Fix: raise offline.memory_limit in "
            "headwater.yaml, or point offline.temp_directory at a disk with free space"
        ) from exc


@contextmanager
def _close_on_error(cursor: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Close ``cursor`` if the block fails; after success the result stream closes it."""
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        if not succeeded:
            cursor.close()



def _checked_reader(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """``reader`` with DuckDB errors raised while streaming mapped to Headwater's."""
    import pyarrow as pa

    return pa.RecordBatchReader.from_batches(reader.schema, _checked(reader))


def _checked(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches, with DuckDB errors raised while streaming mapped as above."""
    iterator = iter(reader)
    while True:
        batch = _duckdb_errors(next, iterator, None)
        if batch is None:
            return
        yield batch


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
