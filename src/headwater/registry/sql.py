"""The SQL both registry backends share: three tables and one write transaction.

Tables (per project, rows never rewritten except a head's version):

- ``hw_objects``  one row per object version: kind, name, version, spec JSON, spec hash
- ``hw_heads``    the current version of each live object
- ``hw_changes``  the append-only change log
- ``hw_watermarks`` per feature view, how far it is materialized (one row, updated in place)

A backend subclass supplies the connection, the placeholder style, the DDL types and the lock
that serializes writers of one project.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from headwater.registry.base import (
    Change,
    ChangeRecord,
    Diff,
    ObjectKey,
    RegistryRecord,
)
from headwater.registry.job_tables import JobTables
from headwater.registry.key_tables import KeyTables
from headwater.registry.model_tables import ModelTables
from headwater.registry.monitor_tables import MonitorTables


class SQLRegistryBackend(ModelTables, JobTables, MonitorTables, KeyTables, ABC):
    """Registry storage over a DB-API connection; see the module docstring for the tables
    (model, scheduler and monitor tables: :mod:`~headwater.registry.model_tables`,
    :mod:`~headwater.registry.job_tables`, :mod:`~headwater.registry.monitor_tables`)."""

    placeholder = "?"

    @property
    @abstractmethod
    def prefix(self) -> str:
        """Qualifier put before table names (a quoted schema and a dot, or nothing)."""

    @abstractmethod
    def _ddl(self) -> list[str]:
        """CREATE statements for the three tables and their indexes."""

    @abstractmethod
    def _exclusive(self, project: str) -> AbstractContextManager[Any]:
        """A transaction that holds the project's write lock; yields a cursor."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Any]:
        """A short read transaction; yields a cursor."""

    def _sql(self, text: str) -> str:
        return text.replace("{p}", self.prefix).replace("?", self.placeholder)

    # -- reads -------------------------------------------------------------------------

    def heads(self, project: str) -> dict[ObjectKey, RegistryRecord]:
        with self._read() as cur:
            return self._heads(cur, project)

    def _heads(self, cur: Any, project: str) -> dict[ObjectKey, RegistryRecord]:
        cur.execute(self._sql(
            "SELECT o.kind, o.name, o.version, o.spec, o.spec_hash, o.created_at "
            "FROM {p}hw_heads h JOIN {p}hw_objects o ON o.project = h.project "
            "AND o.kind = h.kind AND o.name = h.name AND o.version = h.version "
            "WHERE h.project = ?"), (project,))
        records = [_record(row) for row in cur.fetchall()]
        return {r.key: r for r in records}

    def history(self, project: str, kind: str, name: str) -> list[RegistryRecord]:
        with self._read() as cur:
            cur.execute(self._sql(
                "SELECT kind, name, version, spec, spec_hash, created_at FROM {p}hw_objects "
                "WHERE project = ? AND kind = ? AND name = ? ORDER BY version"),
                (project, kind, name))
            return [_record(row) for row in cur.fetchall()]

    def changes(self, project: str, after_id: int = 0) -> list[ChangeRecord]:
        with self._read() as cur:
            cur.execute(self._sql(
                "SELECT id, apply_id, kind, name, action, from_version, to_version, at "
                "FROM {p}hw_changes WHERE project = ? AND id > ? ORDER BY id"),
                (project, after_id))
            return [ChangeRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], _time(r[7]))
                    for r in cur.fetchall()]

    def last_change_id(self, project: str) -> int:
        with self._read() as cur:
            cur.execute(self._sql("SELECT MAX(id) FROM {p}hw_changes WHERE project = ?"),
                        (project,))
            row = cur.fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    # -- the one write path ---------------------------------------------------------------

    def write(self, project: str, diff: Diff) -> list[ChangeRecord]:
        with self._exclusive(project) as cur:
            changes = diff(self._heads(cur, project))
            if not changes:
                return []
            apply_id = uuid.uuid4().hex
            now = datetime.now(UTC)
            return [self._write_one(cur, project, apply_id, now, c) for c in changes]

    def _write_one(self, cur: Any, project: str, apply_id: str, now: datetime,
                   change: Change) -> ChangeRecord:
        key = (project, change.kind, change.name)
        cur.execute(self._sql("SELECT version FROM {p}hw_heads "
                              "WHERE project = ? AND kind = ? AND name = ?"), key)
        row = cur.fetchone()
        from_version = int(row[0]) if row else None
        to_version: int | None = None
        if change.action == "delete":
            cur.execute(self._sql("DELETE FROM {p}hw_heads "
                                  "WHERE project = ? AND kind = ? AND name = ?"), key)
        else:
            cur.execute(self._sql("SELECT MAX(version) FROM {p}hw_objects "
                                  "WHERE project = ? AND kind = ? AND name = ?"), key)
            latest = cur.fetchone()
            to_version = (int(latest[0]) if latest and latest[0] is not None else 0) + 1
            cur.execute(self._sql(
                "INSERT INTO {p}hw_objects (project, kind, name, version, spec, spec_hash, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                (*key, to_version, json.dumps(change.spec, sort_keys=True), change.spec_hash,
                 self._time_param(now)))
            if from_version is None:
                cur.execute(self._sql("INSERT INTO {p}hw_heads (project, kind, name, version) "
                                      "VALUES (?, ?, ?, ?)"), (*key, to_version))
            else:
                cur.execute(self._sql("UPDATE {p}hw_heads SET version = ? "
                                      "WHERE project = ? AND kind = ? AND name = ?"),
                            (to_version, *key))
        cur.execute(self._sql(
            "INSERT INTO {p}hw_changes (project, apply_id, kind, name, action, from_version, "
            "to_version, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
            (project, apply_id, change.kind, change.name, change.action, from_version,
             to_version, self._time_param(now)))
        (change_id,) = cur.fetchone()
        return ChangeRecord(int(change_id), apply_id, change.kind, change.name, change.action,
                            from_version, to_version, now)

    def _time_param(self, value: datetime) -> Any:
        return value

    # -- materialization watermarks ---------------------------------------------------------

    def watermarks(self, project: str) -> dict[str, tuple[int, datetime]]:
        with self._read() as cur:
            cur.execute(self._sql("SELECT view, version, watermark FROM {p}hw_watermarks "
                                  "WHERE project = ?"), (project,))
            return {row[0]: (int(row[1]), _time(row[2])) for row in cur.fetchall()}

    def set_watermark(self, project: str, view: str, version: int, watermark: datetime) -> None:
        with self._exclusive(project) as cur:
            cur.execute(self._sql(
                "INSERT INTO {p}hw_watermarks (project, view, version, watermark, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (project, view) DO UPDATE SET "
                "version = excluded.version, watermark = excluded.watermark, "
                "updated_at = excluded.updated_at"),
                (project, view, version, self._time_param(watermark),
                 self._time_param(datetime.now(UTC))))


def _record(row: Sequence[Any]) -> RegistryRecord:
    spec = json.loads(row[3]) if isinstance(row[3], str) else row[3]
    return RegistryRecord(row[0], row[1], int(row[2]), spec, row[4], _time(row[5]))


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))
