"""Where batch predictions go besides Arrow: a Parquet file, a DuckDB table, a PostgreSQL table.

Every sink streams the record batches it is given (bounded memory) and is all-or-nothing:

* :func:`write_parquet` writes a hidden temp file next to the target and renames it over
  the target when complete, so a reader never sees half a file;
* :func:`write_duckdb` writes into a DuckDB database file (created if missing) inside one
  transaction;
* :func:`write_postgres` writes into a PostgreSQL table of a database named in
  ``offline.connections`` (ADBC bulk ingestion, ``COPY`` under the hood) inside one
  transaction.

``mode`` for tables: ``create`` (the table must not exist), ``append`` (created if
missing) or ``replace`` (dropped and created again). ``table`` is ``name`` or
``schema.name``, each an identifier of letters, digits and underscores.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from headwater.errors import DataError, StoreUnavailableError

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.config import Settings

MODES = ("create", "append", "replace")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # \Z: "$" would let a final newline in


def table_name(table: str) -> tuple[str | None, str]:
    """``(schema or None, name)`` of ``table``; DataError unless both are identifiers."""
    parts = table.split(".") if isinstance(table, str) else []
    if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise DataError(f"{table!r} is not a table name. Fix: write 'name' or 'schema.name' "
                        "with letters, digits and underscores")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise DataError(f"mode {mode!r} is not one of {list(MODES)}. Fix: use 'create' (the "
                        "table must be new), 'append' or 'replace'")


def write_parquet(reader: pa.RecordBatchReader, path: str | os.PathLike[str]) -> int:
    """Stream ``reader`` into the Parquet file ``path`` atomically; returns rows written."""
    import pyarrow.parquet as pq

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    rows = 0
    try:
        with open(temp, "wb") as out:
            with pq.ParquetWriter(out, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return rows


def write_duckdb(reader: pa.RecordBatchReader, database: str | os.PathLike[str], table: str,
                 mode: str = "create") -> int:
    """Stream ``reader`` into ``table`` of the DuckDB database file ``database``."""
    import duckdb

    _check_mode(mode)
    schema, name = table_name(table)
    qualified = f'"{schema}"."{name}"' if schema else f'"{name}"'
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = duckdb.connect(os.fspath(database), config={
            "autoinstall_known_extensions": False, "autoload_known_extensions": False})
    except duckdb.IOException as exc:
        raise StoreUnavailableError(f"DuckDB database {os.fspath(database)} cannot be opened "
                                    f"({exc}). Fix: check the path, and that no other "
                                    "process holds it open for writing") from exc
    rows = 0
    try:
        connection.execute("BEGIN TRANSACTION")
        if schema:
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        exists = _duckdb_has(connection, schema or "main", name)
        if exists and mode == "create":
            raise DataError(f"table {table} already exists in {os.fspath(database)}. Fix: "
                            "use mode 'append' or 'replace', or another table name")
        if exists and mode == "replace":
            connection.execute(f"DROP TABLE {qualified}")
        created = exists and mode == "append"
        for batch in reader:
            connection.register("__hw_batch", batch)
            if not created:
                connection.execute(f"CREATE TABLE {qualified} AS SELECT * FROM __hw_batch")
                created = True
            else:
                connection.execute(f"INSERT INTO {qualified} BY NAME SELECT * FROM __hw_batch")
            connection.unregister("__hw_batch")
            rows += batch.num_rows
        if not created:  # no rows: the table still gets the result's columns
            connection.register("__hw_batch", reader.schema.empty_table())
            connection.execute(f"CREATE TABLE {qualified} AS SELECT * FROM __hw_batch")
        connection.execute("COMMIT")
    except duckdb.Error as exc:
        connection.execute("ROLLBACK")
        raise DataError(f"DuckDB refused writing table {table} in {os.fspath(database)}: "
                        f"{exc}. Fix: check that the table's columns match the "
                        "predictions'") from exc
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()
    return rows


def _duckdb_has(connection: object, schema: str, name: str) -> bool:
    found = connection.execute(  # type: ignore[attr-defined]
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND "
        "table_name = ?", [schema, name]).fetchall()
    return bool(found and found[0][0])


def write_postgres(reader: pa.RecordBatchReader, settings: Settings, connection: str,
                   table: str, mode: str = "create") -> int:
    """Stream ``reader`` into ``table`` of the PostgreSQL database named ``connection`` in
    ``offline.connections``."""
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa

    from headwater.config import CONFIG_FILE

    _check_mode(mode)
    schema, name = table_name(table)
    url = settings.offline.connections.get(connection)
    if url is None or not url.startswith(("postgresql://", "postgres://")):
        known = ", ".join(sorted(settings.offline.connections)) or "none"
        raise DataError(f"connection '{connection}' is not a PostgreSQL database of "
                        f"offline.connections in {CONFIG_FILE} (defined: {known}). Fix: add "
                        f"'{connection}: postgresql://user@host:5432/db' there")
    try:
        conn = adbc.connect(url, autocommit=False)
    except adbc_driver_manager.OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL of connection '{connection}' cannot be "
                                    f"reached ({str(exc).strip().splitlines()[0]}). Fix: "
                                    "start it, or correct offline.connections") from exc
    ingest = {"create": "create", "append": "create_append", "replace": "replace"}[mode]
    counted = [0]

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            counted[0] += batch.num_rows
            yield batch

    try:
        with conn.cursor() as cursor:
            cursor.adbc_ingest(name, pa.RecordBatchReader.from_batches(reader.schema,
                                                                       batches()),
                               mode=ingest, db_schema_name=schema)
        conn.commit()
    except adbc_driver_manager.DatabaseError as exc:
        conn.rollback()
        raise DataError(f"PostgreSQL refused writing table {table} of connection "
                        f"'{connection}': {str(exc).strip().splitlines()[0]}. Fix: use mode "
                        "'append' or 'replace' for an existing table, and matching "
                        "columns") from exc
    finally:
        conn.close()
    return counted[0]
