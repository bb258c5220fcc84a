"""The production registry: tables in a PostgreSQL database (optionally in a schema).

Writers of one project serialize on a transaction-scoped advisory lock; readers never
block. Triggers make the version table and the change log append-only. The connection is
re-opened when the server went away, and an unreachable server is a StoreUnavailableError.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from headwater.config import redact_url
from headwater.definitions.base import check_identifier
from headwater.errors import RegistryError, StoreUnavailableError
from headwater.registry import job_tables, key_tables, model_tables, monitor_tables
from headwater.registry.sql import SQLRegistryBackend

if TYPE_CHECKING:
    import psycopg

_DDL = (
    """CREATE TABLE IF NOT EXISTS {p}hw_objects (
    project TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    spec JSONB NOT NULL, spec_hash TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project, kind, name, version))""",
    """CREATE TABLE IF NOT EXISTS {p}hw_heads (
    project TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (project, kind, name))""",
    """CREATE TABLE IF NOT EXISTS {p}hw_changes (
    id BIGSERIAL PRIMARY KEY, project TEXT NOT NULL, apply_id TEXT NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL, action TEXT NOT NULL,
    from_version INTEGER, to_version INTEGER, at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {p}hw_watermarks (
    project TEXT NOT NULL, view TEXT NOT NULL, version INTEGER NOT NULL,
    watermark TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project, view))""",
    """CREATE INDEX IF NOT EXISTS hw_changes_project ON {p}hw_changes (project, id)""",
    """CREATE OR REPLACE FUNCTION {p}hw_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$""",
    """CREATE OR REPLACE TRIGGER hw_changes_append_only BEFORE UPDATE OR DELETE ON {p}hw_changes
    FOR EACH ROW EXECUTE FUNCTION {p}hw_append_only()""",
    """CREATE OR REPLACE TRIGGER hw_objects_immutable BEFORE UPDATE OR DELETE ON {p}hw_objects
    FOR EACH ROW EXECUTE FUNCTION {p}hw_append_only()""",
    *model_tables.POSTGRES_DDL,
    *job_tables.POSTGRES_DDL,
    *monitor_tables.POSTGRES_DDL,
    *key_tables.POSTGRES_DDL,
)

_DDL_LOCK = 0x68770001  # advisory lock key taken while creating tables


class PostgresRegistry(SQLRegistryBackend):
    """Registry storage in PostgreSQL, reached with psycopg 3."""

    placeholder = "%s"

    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        if schema is not None:
            check_identifier("registry", "schema", schema)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            if schema is not None:
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            for statement in self._ddl():
                cur.execute(statement)

    @property
    def prefix(self) -> str:
        return f'"{self.schema}".' if self.schema else ""

    def _ddl(self) -> list[str]:
        return [s.replace("{p}", self.prefix) for s in _DDL]

    def _connection(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as exc:
                raise StoreUnavailableError(
                    f"cannot reach the PostgreSQL registry at {redact_url(self.url)}: "
                    f"{_one_line(exc)}. Fix: start PostgreSQL or correct 'registry:' in "
                    "headwater.yaml"
                ) from exc
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                raise StoreUnavailableError(
                    f"the PostgreSQL registry at {redact_url(self.url)} failed mid-transaction "
                    f"(nothing was written): {_one_line(exc)}. Fix: retry once it is up"
                ) from exc
            except psycopg.Error as exc:
                raise RegistryError(
                    f"the PostgreSQL registry refused a statement: {_one_line(exc)}"
                ) from exc

    @contextmanager
    def _exclusive(self, project: str) -> Iterator[Any]:
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                        (_DDL_LOCK, _project_key(project)))
            yield cur

    def _read(self) -> Any:
        return self._transaction()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _project_key(project: str) -> int:
    """A stable signed 32-bit key for a project's advisory lock."""
    return zlib.crc32(project.encode()) - 2**31


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
