"""Reading a SQLSource from PostgreSQL as Arrow, through ADBC.

The source's ``connection`` names an entry of ``offline.connections`` in headwater.yaml. The
query runs on a real connection (``adbc_driver_postgresql``, imported only here) with the
session zone set to UTC, and its rows stream back as Arrow record batches in the query's
result order, which is the source's ingestion order. PostgreSQL ``numeric`` columns are read
as float64.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from headwater.config import CONFIG_FILE, Settings
from headwater.definitions import SQLSource
from headwater.errors import ConfigError, DataError, StoreUnavailableError
from headwater.offline.sql_names import quote

if TYPE_CHECKING:
    import pyarrow as pa

_POSTGRES = ("postgresql://", "postgres://")


def connection_url(settings: Settings, source: SQLSource) -> str:
    """The URL of the database ``source.connection`` names; ConfigError naming the fix."""
    url = settings.offline.connections.get(source.connection)
    if url is None:
        known = ", ".join(sorted(settings.offline.connections)) or "none"
        raise ConfigError(
            f"{source.label()}: connection '{source.connection}' is not defined in "
            f"{CONFIG_FILE} (defined: {known}). Fix: add it under offline.connections, e.g. "
            f"'{source.connection}: postgresql://user@host:5432/warehouse'"
        )
    if not url.startswith(_POSTGRES):
        raise ConfigError(
            f"{CONFIG_FILE}: offline.connections.{source.connection} is not a PostgreSQL URL. "
            "Fix: write it as postgresql://user@host:5432/database"
        )
    return url


def read_schema(url: str, source: SQLSource) -> pa.Schema:
    """The Arrow schema of the query's rows, from a ``LIMIT 0`` wrapper (no data read)."""
    with _cursor(url, source) as cursor:
        _execute(cursor, source, f"SELECT * FROM ({source.query}) AS __hw_q LIMIT 0", ())
        return _normalize_schema(cursor.fetch_arrow_table().schema)


@contextmanager
def fetch(
    url: str,
    source: SQLSource,
    columns: Sequence[str] | None,
    until: datetime | None,
    until_column: str | None,
) -> Iterator[pa.RecordBatchReader]:
    """Run the query; the context is a streaming reader over its rows, in result order.

    ``columns`` limits the columns read (None: all). With ``until`` and ``until_column``,
    only rows with ``until_column <= until`` are read: the filter runs in PostgreSQL. The
    connection closes when the context exits."""
    select = "*" if columns is None else ", ".join(quote(c) for c in columns)
    sql = f"SELECT {select} FROM ({source.query}) AS __hw_q"
    params: tuple[Any, ...] = ()
    if until is not None and until_column is not None:
        sql += f" WHERE {quote(until_column)} <= $1"
        params = (until,)
    with _cursor(url, source) as cursor:
        _execute(cursor, source, sql, params)
        yield _normalize_reader(cursor.fetch_record_batch())


@contextmanager
def _cursor(url: str, source: SQLSource) -> Iterator[Any]:
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as adbc

    try:
        connection = adbc.connect(url)
    except adbc_driver_manager.OperationalError as exc:
        where = urlsplit(url)
        raise StoreUnavailableError(
            f"{source.label()}: PostgreSQL at {where.hostname}:{where.port or 5432} cannot be "
            f"reached ({_first_line(exc)}). Fix: start the server, or correct "
            f"offline.connections.{source.connection} in {CONFIG_FILE}"
        ) from exc
    try:
        cursor = connection.cursor()
        try:
            cursor.execute("SET TIME ZONE 'UTC'")
            yield cursor
        finally:
            cursor.close()
    finally:
        connection.close()


def _execute(cursor: Any, source: SQLSource, sql: str, params: tuple[Any, ...]) -> None:
    import adbc_driver_manager

    try:
        cursor.execute(sql, parameters=params or None)
    except adbc_driver_manager.DatabaseError as exc:
        raise DataError(
            f"{source.label()}: PostgreSQL refused the query ({_first_line(exc)}). Fix: "
            "correct the source's query so that it runs in psql"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_numeric(field: pa.Field) -> bool:
    """Whether the driver handed over a PostgreSQL ``numeric`` column (an opaque extension
    type holding the decimal text)."""
    kind = field.type
    return getattr(kind, "extension_name", None) == "arrow.opaque" and (
        getattr(kind, "type_name", None) == "numeric")


def _normalize_schema(schema: pa.Schema) -> pa.Schema:
    """Plain Arrow types: numeric (an opaque string extension) becomes float64; driver
    metadata is dropped."""
    import pyarrow as pa

    fields = [pa.field(f.name, pa.float64() if _is_numeric(f) else f.type, f.nullable)
              for f in schema]
    return pa.schema(fields)


def _normalize_reader(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    import pyarrow as pa

    source_schema = reader.schema
    schema = _normalize_schema(source_schema)
    numeric = [i for i, f in enumerate(source_schema) if _is_numeric(f)]

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            arrays = list(batch.columns)
            for i in numeric:
                arrays[i] = arrays[i].storage.cast(pa.float64())
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())
