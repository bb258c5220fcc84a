"""A view's raw events in a time range, for tile backfills and streaming ingest.

:meth:`~headwater.offline.duckdb.DuckDBEngine.read_events` gives every row of the view's
batch source with ``start <= ts < end`` (the half-open range of windowed aggregation, so two
adjacent ranges never share an event), in ingestion order. Columns: the join keys as the
source stores them, ``__hw_ts`` and ``__hw_created`` (timestamp[us, UTC]; created is null when
the source has no created column or value), ``__hw_seq`` (int64), then the columns of the
view's ``schema`` cast to their declared dtypes.

``__hw_seq`` is the ingestion order of the point-in-time rule (see
:mod:`~headwater.offline.source_reader` and :mod:`~headwater.offline.file_order`) as one
int64, unique per row and the same whatever range is read:

* Parquet files: ``file_index << 40 | row_in_file``, so up to 2^23 files of up to 2^40 rows
  each (larger inputs are a DataError, never a silent wrap);
* CSV files and SQL sources (copied into a table in ingestion order): the row id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureView, Field
from headwater.offline.base import EVENT_SEQ, LATEST_CREATED, LATEST_TS
from headwater.offline.sql_names import quote
from headwater.offline.timestamps import INSTANT
from headwater.offline.view_rows import ViewRows

if TYPE_CHECKING:
    import pyarrow as pa

ROW_BITS = 40
"""Bits of the row-in-file part of a Parquet event's ``__hw_seq``."""
_FILE_LIMIT = 1 << (63 - ROW_BITS)


def seq_sql(order: Sequence[str]) -> str:
    """The ingestion order parts of a scan (most significant first) as one BIGINT
    expression; a file index or row beyond the packed widths raises in DuckDB."""
    if len(order) == 1:
        return f"CAST({order[0]} AS BIGINT)"
    if len(order) != 2:
        raise ValueError(f"unexpected ingestion order {order!r}")  # engine bug, not user input
    file, row = order
    message = (f"more than {_FILE_LIMIT} files or {1 << ROW_BITS} rows in one file: the "
               "ingestion order does not fit 64 bits. Fix: compact the source into fewer, "
               "smaller files")
    return (f"CASE WHEN {file} < {_FILE_LIMIT} AND {row} < {1 << ROW_BITS} "
            f"THEN ({file} << {ROW_BITS}) | {row} ELSE error('{message}') END")


def events_query(view: FeatureView, rows: ViewRows, start: datetime,
                 end: datetime) -> tuple[str, dict[str, Any]]:
    """The statement and parameters selecting the events with ``start <= ts < end``, in
    ingestion order (DuckDB keeps scan order while ``preserve_insertion_order`` is on, so
    no sort is needed)."""
    created = rows.created if rows.created is not None else f"NULL::{INSTANT}"
    columns = [*(quote(k) for k in view.join_keys), f"{rows.ts} AS {LATEST_TS}",
               f"{created} AS {LATEST_CREATED}",
               f"{seq_sql(rows.scan.order)} AS {EVENT_SEQ}",
               *(f"{expr} AS {quote(f.name)}" for expr, f in zip(rows.features, fields(view),
                                                                  strict=True))]
    sql = (f"SELECT {', '.join(columns)} FROM {rows.scan.from_sql} "
           f"WHERE {rows.ts} >= $__hw_start AND {rows.ts} < $__hw_end")
    return sql, {**rows.scan.params, "__hw_start": start, "__hw_end": end}


def fields(view: FeatureView) -> tuple[Field, ...]:
    """The value columns of a view's events: its schema (for an aggregated view, the
    aggregated columns)."""
    return view.schema or ()


def output_schema(view: FeatureView, raw: pa.Schema) -> pa.Schema:
    """The declared schema of the events, from the query's own (``raw``) key types."""
    import pyarrow as pa

    utc = pa.timestamp("us", tz="UTC")
    out = [raw.field(k) for k in view.join_keys]
    out += [pa.field(LATEST_TS, utc), pa.field(LATEST_CREATED, utc),
            pa.field(EVENT_SEQ, pa.int64())]
    out += [pa.field(f.name, f.dtype.to_arrow()) for f in fields(view)]
    return pa.schema(out)
