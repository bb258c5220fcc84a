"""A feature view's rows as the engine's queries read them.

:func:`read_view` prepares the view's source on a connection (see
:mod:`~headwater.offline.source_reader`), checks its time columns (a string time column is
scanned once for unparseable or mixed-zone values) and gives SQL expressions for the event
time and created time as UTC instants and for each requested feature, converted where the
feature's dtype needs it (a ``Timestamp`` feature read from naive times becomes UTC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from headwater.definitions import FeatureView, Field
from headwater.errors import DataError
from headwater.offline.source_reader import SourceReader, SourceScan
from headwater.offline.sql_names import quote
from headwater.offline.timestamps import TimeKind, as_instant, check_strings, time_kind
from headwater.types import Timestamp

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


@dataclass(frozen=True)
class ViewRows:
    """One view's prepared source and the SQL expressions queries select from it."""

    scan: SourceScan
    ts: str
    created: str | None
    features: tuple[str, ...]


def read_view(
    con: duckdb.DuckDBPyConnection,
    reader: SourceReader,
    view: FeatureView,
    fields: Sequence[Field],
    schema: pa.Schema,
    *,
    until: datetime | None,
    tag: str,
) -> ViewRows:
    """Prepare ``view``'s source (whose schema is ``schema``) for the ``fields`` asked of
    it. ``until`` is the latest time any query will use; ``tag`` keeps parameter names
    unique within a statement. DataError when a time column cannot hold times."""
    source = view.batch_source
    columns = [*view.join_keys, *source.time_columns(), *(f.name for f in fields)]
    scan = reader.scan(con, source, schema, list(dict.fromkeys(columns)), until=until, tag=tag)
    instants: dict[str, str] = {}
    for column in source.time_columns():
        kind = time_kind(scan.schema.field(column).type)
        if kind is None:
            raise DataError(
                f"FeatureView '{view.name}': time column '{column}' of {source.label()} has "
                f"type {scan.schema.field(column).type}. Fix: use a timestamp, date or "
                "ISO-8601 string column"
            )
        if kind is TimeKind.STRING:
            check_strings(con, scan.from_sql, scan.params, quote(column),
                          owner=f"FeatureView '{view.name}' ({source.label()})", column=column)
        instants[column] = as_instant(quote(column), kind)
    features = []
    for field in fields:
        expr = quote(field.name)
        kind = time_kind(scan.schema.field(field.name).type)
        if field.dtype == Timestamp and kind is not None:
            expr = as_instant(expr, kind)
        features.append(expr)
    created = source.created_timestamp_field
    return ViewRows(scan, instants[source.timestamp_field],
                    None if created is None else instants[created], tuple(features))
