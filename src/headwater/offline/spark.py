"""The Spark offline engine: the DuckDB engine's semantics, run on a Spark cluster.

Chosen in ``headwater.yaml`` (the ``spark`` extra installs PySpark)::

    offline:
      engine: spark
      master: local[2]              # spark.master (default local[*]); a cluster URL in production
      spark_conf:                   # any Spark settings, passed to the SparkSession builder
        spark.sql.shuffle.partitions: "8"

The session is described in :mod:`~headwater.offline.spark_session` (UTC, no UI, nothing
downloaded; a session already active in the process is borrowed and left running by
:meth:`SparkEngine.close`). The steps mirror the DuckDB engine's: sources in
:mod:`~headwater.offline.spark_sources` (Parquet read by Spark; CSV and SQL sources read on
the driver), a view's rows in :mod:`~headwater.offline.spark_rows`, the point-in-time join
in :mod:`~headwater.offline.spark_join` and windowed aggregations in
:mod:`~headwater.offline.spark_aggregate`.

Entity frames are everything the DuckDB engine takes (pandas, polars, Arrow; a SQL string,
here run by Spark SQL over the registered views named in it) and a ``pyspark.sql.DataFrame``.
:meth:`~headwater.offline.retrieval.RetrievalJob.to_spark` gives the training frame as a Spark
DataFrame without collecting it; the other results (``to_arrow``, ``to_batches``, ...)
collect the joined feature columns on the driver. For an Arrow-like entity frame only its
keys and time go to Spark: its columns come back untouched, as on DuckDB.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from headwater.config import Settings
from headwater.definitions import FeatureView, Source
from headwater.errors import DataError
from headwater.offline import events, latest
from headwater.offline.aggregate import input_fields, requested
from headwater.offline.entity_frame import (
    ME,
    EntityFrame,
    check_frame,
    find_time_column,
    key_class,
    narrow_table,
)
from headwater.offline.feature_cast import cast_batches, cast_feature
from headwater.offline.frames import to_arrow
from headwater.offline.pit_join import feature_column
from headwater.offline.result_stream import output_schema, stitch
from headwater.offline.retrieval import RetrievalJob
from headwater.offline.spark_aggregate import aggregate_view
from headwater.offline.spark_entity import (
    arrow_range,
    arrow_schema,
    first_line,
    is_spark_frame,
    normalized_times,
    spark_errors,
    spark_range,
)
from headwater.offline.spark_join import join_view, key_type
from headwater.offline.spark_rows import (
    PRUNE_KEYS,
    events_frame,
    latest_frame,
    view_rows,
)
from headwater.offline.spark_session import open_session
from headwater.offline.spark_sources import SEQ, SparkSources, col, instant, to_spark_frame
from headwater.offline.sql_names import ROW, TIME
from headwater.offline.timestamps import TimeKind
from headwater.types import from_micros, to_utc

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.offline.base import ViewRequest

DEFAULT_BATCH_ROWS = 131_072
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Plan:
    """A validated retrieval, run each time its job is read."""

    requests: tuple[ViewRequest, ...]
    source_schemas: tuple[pa.Schema, ...]
    table: pa.Table | None  # Arrow-like entity rows, or None for a Spark frame
    frame: Any  # the Spark entity DataFrame (given, or from a query), or None
    time_column: str
    time_kind: TimeKind
    arrow_schema: pa.Schema  # of the entity frame


class SparkEngine:
    """The Spark offline engine (see the module docstring). ``spark`` runs the engine on
    that session's cluster instead of the active or a new one; ``batch_size`` is the
    number of rows per streamed record batch."""

    def __init__(self, settings: Settings, *, spark: Any = None,
                 batch_size: int = DEFAULT_BATCH_ROWS) -> None:
        self._session = open_session(settings.offline, spark)
        self._sources = SparkSources(settings, self._session.spark)
        self._batch_size = batch_size

    @property
    def spark(self) -> Any:
        """The engine's SparkSession (its own SQL settings, on the shared cluster)."""
        return self._session.spark

    def source_schema(self, source: Source) -> pa.Schema:
        """The Arrow schema of ``source``'s rows, from metadata (as on DuckDB)."""
        return self._sources.schema(source)

    def get_historical_features(
        self,
        entity_df: Any,
        requests: Sequence[ViewRequest],
        *,
        timestamp_field: str | None = None,
        tables: Mapping[str, Source] | None = None,
    ) -> RetrievalJob:
        """Point-in-time join of each request's features to the entity rows (see
        :mod:`~headwater.offline.spark_join`). Checks as on DuckDB, reading schemas only;
        the join runs each time the job is read."""
        schemas = tuple(self._sources.schema(r.view.batch_source) for r in requests)
        table = frame = None
        if isinstance(entity_df, str):
            frame = self._query(entity_df, dict(tables or {}))
        elif is_spark_frame(entity_df):
            frame = entity_df
        else:
            table = to_arrow(entity_df, ME, also=("a SQL query string", "a Spark DataFrame"))
        schema = table.schema if table is not None else arrow_schema(frame)
        time_column, kind = find_time_column(schema, timestamp_field)
        check_frame(schema, requests, schemas)
        plan = _Plan(tuple(requests), schemas, table, frame, time_column, kind, schema)
        return RetrievalJob(partial(self._open, plan), partial(self._open_spark, plan))

    def latest_rows(self, view: FeatureView, start: datetime,
                    end: datetime) -> pa.RecordBatchReader:
        """Per entity, the row with ``start <= ts <= end`` the point-in-time rule picks at
        ``end`` (columns as :meth:`DuckDBEngine.latest_rows`); collected on the driver."""
        start, end = to_utc(start), to_utc(end)
        rows, source = view_rows(self._sources, view, view.features)
        table = spark_errors(latest_frame(rows, view, start, end).toArrow)
        table = _unsigned(table, {f.name: source.field(f.name).type for f in view.features})
        out = latest.output_schema(view, table.schema)
        return self._reader(out, cast_batches(self._batches(table), out, view=view.name,
                                              values=set(view.feature_names),
                                              close=_nothing))

    def read_events(self, view: FeatureView, start: datetime,
                    end: datetime) -> pa.RecordBatchReader:
        """The view's events with ``start <= ts < end`` in ingestion order (columns as
        :meth:`DuckDBEngine.read_events`); collected on the driver."""
        start, end = to_utc(start), to_utc(end)
        fields = events.fields(view)
        rows, source = view_rows(self._sources, view, fields)
        table = spark_errors(events_frame(rows, view, fields, start, end).toArrow)
        table = _unsigned(table, {f.name: source.field(f.name).type for f in fields})
        out = events.output_schema(view, table.schema)
        return self._reader(out, cast_batches(self._batches(table), out, view=view.name,
                                              values={f.name for f in fields}, close=_nothing))

    def read_source(self, source: Source, columns: Sequence[str] | None = None) -> pa.Table:
        """All rows of ``source`` (``columns`` only when given) in ingestion order, time
        columns as ``timestamp[us, UTC]``."""
        import pyarrow as pa

        scan = self._sources.scan(source, columns)
        wanted = [c for c in scan.frame.columns if c != SEQ]
        times = [c for c in source.time_columns() if c in wanted]
        selects = [instant(scan.frame, c, scan.schema.field(c).type, owner=source.label())
                   .alias(c) if c in times else col(c) for c in wanted]
        table: pa.Table = spark_errors(
            scan.frame.orderBy(col(SEQ)).select(*selects).toArrow)
        utc = pa.timestamp("us", "UTC")
        for column in times:
            index = table.schema.get_field_index(column)
            table = table.set_column(index, column, table.column(index).cast(utc))
        return table

    def latest_time(self, source: Source) -> datetime | None:
        """The greatest event time of ``source``'s rows (UTC), or None: one ``max``."""
        from pyspark.sql import functions as F

        column = source.timestamp_field
        schema = self._sources.schema(source)
        if column not in schema.names:
            raise DataError(f"{source.label()}: no column '{column}'; its columns are "
                            f"{schema.names}. Fix: correct timestamp_field")
        scan = self._sources.scan(source, [column])
        value = instant(scan.frame, column, schema.field(column).type, owner=source.label())
        row = spark_errors(lambda: scan.frame.agg(F.max(F.unix_micros(value))).collect()[0])
        return None if row[0] is None else from_micros(row[0])

    def close(self) -> None:
        """Release the engine: its driver-side DuckDB and, if the engine started it, the
        SparkContext (a borrowed one keeps running)."""
        self._sources.close()
        self._session.stop()

    # -- running a retrieval -------------------------------------------------------------

    def _query(self, query: str, tables: Mapping[str, Source]) -> Any:
        from pyspark.errors import PySparkException

        from headwater.offline.entity_query import _named

        body = query.strip().rstrip(";").strip()
        if not body:
            raise DataError("entity query: the query is empty. Fix: pass a SELECT statement, "
                            "or a DataFrame of entity rows")
        for name, source in tables.items():
            if _named(body, name):
                self._sources.stored(source).createOrReplaceTempView(name)
        try:
            return self.spark.sql(body)
        except PySparkException as exc:
            known = ", ".join(sorted(tables)) or "none registered"
            raise DataError(
                f"entity query: Spark cannot run the query ({first_line(exc)}). Fix: correct the "
                f"SQL (Spark SQL); it may name registered feature views as tables ({known})"
            ) from exc

    def _entity(self, plan: _Plan) -> tuple[Any, Any, tuple[datetime | None, datetime | None]]:
        """The entity rows for the join (``__hw_row``, keys, ``__hw_t`` as TIMESTAMP), the
        full entity frame with ``__hw_row`` (Spark input only, else None) and the earliest
        and latest entity time."""
        from pyspark.sql import functions as F

        keys = list(dict.fromkeys(k for r in plan.requests for k in r.view.join_keys))
        if plan.table is not None:
            narrow = normalized_times(narrow_table(
                EntityFrame(plan.table, plan.time_column, plan.time_kind), keys), plan.time_kind)
            rows = to_spark_frame(self.spark, narrow)
            if plan.time_kind is TimeKind.STRING:
                rows = rows.withColumn(TIME, instant(rows, TIME, narrow.schema.field(TIME).type,
                                                     owner=ME, label=plan.time_column))
                return rows, None, spark_range(rows)
            return rows, None, arrow_range(narrow)
        full = plan.frame.withColumn(ROW, F.monotonically_increasing_id()).localCheckpoint()
        time = instant(full, plan.time_column, plan.arrow_schema.field(plan.time_column).type,
                       owner=ME)
        rows = full.select(col(ROW), *(col(k) for k in keys), time.alias(TIME))
        return rows, full, spark_range(rows)

    def _features(self, plan: _Plan, rows: Any,
                  entity_range: tuple[datetime | None, datetime | None]) -> Any:
        """``__hw_row`` and every feature column ``__hw_v{i}_{j}``, one row per entity row
        (not ordered)."""
        result = None
        for index, (request, schema) in enumerate(zip(plan.requests, plan.source_schemas,
                                                      strict=True)):
            view = request.view
            keys_as = [key_type(key_class(schema.field(k).type)) for k in view.join_keys]
            few = _few_keys(plan.table, view.join_keys)
            if view.is_aggregated:
                fields = input_fields(view, requested(view, request.features))
                source_rows, _ = view_rows(self._sources, view, fields)
                part = aggregate_view(rows, source_rows, view=view, features=request.features,
                                      fields=fields, keys_as=keys_as, index=index,
                                      entity_range=entity_range, few_keys=few)
            else:
                source_rows, _ = view_rows(self._sources, view, request.features)
                part = join_view(rows, source_rows, keys=view.join_keys, key_types=keys_as,
                                 width=len(request.features), index=index, ttl=view.ttl,
                                 entity_range=entity_range, few_keys=few)
            result = part if result is None else result.join(part, on=ROW, how="left")
        return rows.select(col(ROW)) if result is None else result

    def _columns(self, plan: _Plan) -> tuple[list[str], list[pa.DataType], list[str],
                                              list[tuple[str, str]]]:
        names = [n for r in plan.requests for n in r.output_names]
        types = [f.dtype.to_arrow() for r in plan.requests for f in r.features]
        internal = [feature_column(i, j) for i, r in enumerate(plan.requests)
                    for j in range(len(r.features))]
        features = [(r.view.name, f.name) for r in plan.requests for f in r.features]
        return names, types, internal, features

    def _open(self, plan: _Plan) -> pa.RecordBatchReader:
        rows, full, entity_range = self._entity(plan)
        values = self._features(plan, rows, entity_range)
        names, types, internal, features = self._columns(plan)
        if plan.table is not None:
            joined = values.select(col(ROW), *(col(c) for c in internal))
            table = _unsigned(_by_row(spark_errors(joined.toArrow)), self._stored_types(plan))
            schema = output_schema(plan.table.schema, names, types)
            return self._reader(schema, stitch(plan.table, self._batches(table), schema,
                                               features, _nothing))
        joined = full.join(values, on=ROW, how="left")
        stored = self._stored_types(plan)
        table = _by_row(spark_errors(joined.toArrow)).drop_columns([ROW])
        width = len(table.schema) - len(internal)
        table = _unsigned(table, {table.schema.names[width + i]: stored[c]
                                  for i, c in enumerate(internal) if c in stored})
        import pyarrow as pa

        entity_schema = pa.schema(list(table.schema)[:width])
        schema = output_schema(entity_schema, names, types)
        return self._reader(schema, self._cast(table, schema, width, features))

    @staticmethod
    def _stored_types(plan: _Plan) -> dict[str, pa.DataType]:
        """The source type of each latest-value feature column, by internal name."""
        return {feature_column(i, j): schema.field(f.name).type
                for i, (r, schema) in enumerate(zip(plan.requests, plan.source_schemas,
                                                    strict=True))
                if not r.view.is_aggregated for j, f in enumerate(r.features)}

    def _cast(self, table: pa.Table, schema: pa.Schema, width: int,
              features: Sequence[tuple[str, str]]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for batch in self._batches(table):
            arrays = list(batch.columns[:width])
            for i, (view, name) in enumerate(features):
                arrays.append(cast_feature(batch.column(width + i), schema.field(width + i).type,
                                           view=view, feature=name))
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _open_spark(self, plan: _Plan) -> Any:
        import numpy as np
        from pyspark.sql.pandas.types import from_arrow_type

        rows, full, entity_range = self._entity(plan)
        values = self._features(plan, rows, entity_range)
        names, types, internal, _ = self._columns(plan)
        if plan.table is not None:
            import pyarrow as pa

            numbered = plan.table.append_column(
                ROW, pa.array(np.arange(plan.table.num_rows, dtype=np.int64)))
            full = to_spark_frame(self.spark, numbered)
        entity_columns = [c for c in full.columns if c != ROW]
        casts = [col(c).cast(from_arrow_type(t)).alias(n)
                 for c, t, n in zip(internal, types, names, strict=True)]
        return full.join(values, on=ROW, how="left").orderBy(col(ROW)).select(
            *(col(c) for c in entity_columns), *casts)

    def _batches(self, table: pa.Table) -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=self._batch_size)

    @staticmethod
    def _reader(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> pa.RecordBatchReader:
        import pyarrow as pa

        return pa.RecordBatchReader.from_batches(schema, batches)


def _few_keys(table: pa.Table | None, keys: Sequence[str]) -> bool:
    """Whether a local (Arrow) entity frame has at most
    :data:`~headwater.offline.spark_rows.PRUNE_KEYS` distinct ``keys`` (counted with Arrow),
    so that the view's rows are pruned to them; False for a Spark frame."""
    if table is None:
        return False
    if table.num_rows <= PRUNE_KEYS:
        return True
    names = list(dict.fromkeys(keys))
    distinct: int = table.select(names).group_by(names).aggregate([]).num_rows
    return distinct <= PRUNE_KEYS


def _unsigned(table: pa.Table, stored: Mapping[str, pa.DataType]) -> pa.Table:
    """Unsigned source columns back as their stored type: Spark has no unsigned integers
    (it reads uint64 as DECIMAL(20), smaller ones widened), so a value that does not fit its
    declared dtype is reported with the source's own type, as on DuckDB."""
    import pyarrow as pa

    for name, kind in stored.items():
        if pa.types.is_unsigned_integer(kind) and name in table.schema.names:
            index = table.schema.get_field_index(name)
            if table.schema.field(index).type != kind:
                table = table.set_column(index, name, table.column(index).cast(kind))
    return table


def _by_row(table: pa.Table) -> pa.Table:
    """A collected result in entity row order (sorting on the driver, where the rows are
    anyway, saves Spark a range-partitioning pass)."""
    import pyarrow.compute as pc

    return table.take(pc.sort_indices(table.column(ROW)))


def _nothing() -> None:
    """Nothing to close: a collected result holds no cursor."""
