"""The latest row per entity in a time range, for materialization.

For each entity (the view's join keys), the row with ``start <= ts <= end`` that the
point-in-time rule would pick at ``end``: the greatest ``(ts, created, ingestion order)``.
With the tie-free order key of :mod:`~headwater.offline.order_key` this is one hash
aggregate grouped by the keys, ``arg_max_null(column, order key)`` per column: the key is
unique per row, so every column comes from the same row, nulls included.

Columns: the join keys (as the source stores them), ``__hw_ts`` and ``__hw_created``
(timestamp[us, UTC]; null created when the source has none), then the features in schema
order, cast to their declared dtypes by
:func:`~headwater.offline.feature_cast.cast_batches`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureView
from headwater.offline.base import LATEST_CREATED, LATEST_TS
from headwater.offline.order_key import OrderKey
from headwater.offline.sql_names import quote
from headwater.offline.timestamps import INSTANT
from headwater.offline.view_rows import ViewRows

if TYPE_CHECKING:
    import pyarrow as pa



def rows_clause(rows: ViewRows) -> str:
    """``FROM ... WHERE start <= ts <= end`` (parameters from :func:`bounds`)."""
    return f"FROM {rows.scan.from_sql} WHERE {rows.ts} >= $__hw_start AND {rows.ts} <= $__hw_end"


def bounds(rows: ViewRows, start: datetime, end: datetime) -> dict[str, Any]:
    """The parameters of :func:`rows_clause`."""
    return {**rows.scan.params, "__hw_start": start, "__hw_end": end}


def latest_query(view: FeatureView, rows: ViewRows, order: OrderKey, start: datetime,
                 end: datetime) -> tuple[str, dict[str, Any]]:
    """The statement and its parameters: the order key computed once per row, then one
    ``arg_max_null`` per column grouped by the keys (the key is tie-free, so every column
    comes from the same row, and ``arg_max_null`` keeps null values)."""
    keys = [quote(k) for k in view.join_keys]
    created = rows.created if rows.created is not None else f"NULL::{INSTANT}"
    inner = [*keys, f"{rows.ts} AS __hw_c0", f"{created} AS __hw_c1",
             *(f"{expr} AS __hw_c{j + 2}" for j, expr in enumerate(rows.features)),
             f"{order.feature_sql} AS __hw_k"]
    names = [LATEST_TS, LATEST_CREATED, *(quote(f.name) for f in view.features)]
    picked = [f"arg_max_null(__hw_c{j}, __hw_k) AS {name}" for j, name in enumerate(names)]
    sql = (f"SELECT {', '.join(keys)}, {', '.join(picked)} FROM ("
           f"SELECT {', '.join(inner)} {rows_clause(rows)}) GROUP BY {', '.join(keys)}")
    return sql, {**bounds(rows, start, end), **_used(order)}


def _used(order: OrderKey) -> dict[str, Any]:
    """The order key's parameters its feature side names (DuckDB refuses unused ones)."""
    return {k: v for k, v in order.params.items() if f"${k}" in order.feature_sql}


def output_schema(view: FeatureView, raw: pa.Schema) -> pa.Schema:
    """The declared output schema, from the query's own (``raw``) key types."""
    import pyarrow as pa

    utc = pa.timestamp("us", tz="UTC")
    fields = [raw.field(k) for k in view.join_keys]
    fields += [pa.field(LATEST_TS, utc), pa.field(LATEST_CREATED, utc)]
    fields += [pa.field(f.name, f.dtype.to_arrow()) for f in view.features]
    return pa.schema(fields)
