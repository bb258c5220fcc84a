"""The embedded registry: one SQLite file in the repo (``.headwater/registry.db``).

Writers serialize on ``BEGIN IMMEDIATE``; WAL lets readers go on meanwhile. Triggers make
the version table and the change log append-only.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from headwater.errors import RegistryError
from headwater.registry import job_tables, key_tables, model_tables, monitor_tables
from headwater.registry.sql import SQLRegistryBackend

_DDL = (
    """CREATE TABLE IF NOT EXISTS hw_objects (
    project TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    spec TEXT NOT NULL, spec_hash TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (project, kind, name, version))""",
    """CREATE TABLE IF NOT EXISTS hw_heads (
    project TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (project, kind, name))""",
    """CREATE TABLE IF NOT EXISTS hw_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, apply_id TEXT NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL, action TEXT NOT NULL,
    from_version INTEGER, to_version INTEGER, at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS hw_watermarks (
    project TEXT NOT NULL, view TEXT NOT NULL, version INTEGER NOT NULL,
    watermark TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (project, view))""",
    """CREATE INDEX IF NOT EXISTS hw_changes_project ON hw_changes (project, id)""",
    """CREATE TRIGGER IF NOT EXISTS hw_changes_append_only_u BEFORE UPDATE ON hw_changes
    BEGIN SELECT RAISE(ABORT, 'hw_changes is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS hw_changes_append_only_d BEFORE DELETE ON hw_changes
    BEGIN SELECT RAISE(ABORT, 'hw_changes is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS hw_objects_immutable_u BEFORE UPDATE ON hw_objects
    BEGIN SELECT RAISE(ABORT, 'hw_objects versions are immutable'); END""",
    """CREATE TRIGGER IF NOT EXISTS hw_objects_immutable_d BEFORE DELETE ON hw_objects
    BEGIN SELECT RAISE(ABORT, 'hw_objects versions are immutable'); END""",
    *model_tables.SQLITE_DDL,
    *job_tables.SQLITE_DDL,
    *monitor_tables.SQLITE_DDL,
    *key_tables.SQLITE_DDL,
)

_BUSY_TIMEOUT_S = 60.0


class SQLiteRegistry(SQLRegistryBackend):
    """Registry storage in a SQLite file; safe across threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S,
                                         isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as exc:
            raise RegistryError(
                f"cannot open the registry file {self.path}: {exc}. Fix: make its folder "
                "writable, or set 'registry:' in headwater.yaml to another path"
            ) from exc
        self._lock = threading.RLock()
        with self._transaction("BEGIN IMMEDIATE") as cur:
            for statement in _DDL:
                cur.execute(statement)

    @property
    def prefix(self) -> str:
        return ""

    def _ddl(self) -> list[str]:
        return list(_DDL)

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute(begin)
            except sqlite3.OperationalError as exc:
                cur.close()
                raise RegistryError(
                    f"the registry {self.path} stayed locked for {_BUSY_TIMEOUT_S:.0f}s: "
                    f"{exc}. Fix: wait for the other apply to finish and retry"
                ) from exc
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def _exclusive(self, project: str) -> Any:
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self) -> Any:
        return self._transaction("BEGIN")

    def _time_param(self, value: datetime) -> Any:
        return value.isoformat()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
