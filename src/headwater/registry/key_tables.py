"""The API keys' table, in the same database as the catalog.

- ``hw_api_keys``  one row per key: its public id, a name, the SHA-256 of the key (never
  the key), its scopes, when it was created and, once revoked, when. Unique on
  ``(project, key_id)``.

A key is shown once, when it is created (:mod:`headwater.serving.keys` makes it); the table
keeps only what checks it. Revoking sets ``revoked_at``; the row stays, so ``headwater keys
list`` shows who had access when. :class:`KeyTables` is mixed into
:class:`~headwater.registry.sql.SQLRegistryBackend`, so SQLite and PostgreSQL share these
statements; every write goes through the project's exclusive transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from headwater.errors import NotFoundError, RegistryError
from headwater.registry.tables import SQLHost, optional_stored_time, stored_time

_COLUMNS = "key_id, name, digest, scopes, created_at, revoked_at"

SQLITE_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS hw_api_keys (
    project TEXT NOT NULL, key_id TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL,
    scopes TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT,
    PRIMARY KEY (project, key_id))""",
)
POSTGRES_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS {p}hw_api_keys (
    project TEXT NOT NULL, key_id TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL,
    scopes TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, revoked_at TIMESTAMPTZ,
    PRIMARY KEY (project, key_id))""",
)


@dataclass(frozen=True)
class StoredKey:
    """One API key as the registry keeps it: ``digest`` is the hex SHA-256 that
    :func:`headwater.serving.keys.digest` gives of the key; the key itself is not kept."""

    key_id: str
    name: str
    digest: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyTables(SQLHost):
    """API key storage (see the module docstring). Relies on the host class's ``_sql``,
    ``_exclusive``, ``_read`` and ``_time_param``."""

    def add_key(self, project: str, key: StoredKey) -> None:
        """Store a new key; ValueError if its id exists (ids are random: never in practice)."""
        with self._exclusive(project) as cur:
            cur.execute(self._sql("SELECT 1 FROM {p}hw_api_keys WHERE project = ? AND "
                                  "key_id = ?"), (project, key.key_id))
            if cur.fetchone():
                raise ValueError(f"API key id {key.key_id!r} exists already")
            cur.execute(self._sql(
                f"INSERT INTO {{p}}hw_api_keys (project, {_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)"),
                (project, key.key_id, key.name, key.digest, ",".join(key.scopes),
                 self._time_param(key.created_at), None))

    def api_keys(self, project: str, *, active_only: bool = False) -> list[StoredKey]:
        """The project's keys, oldest first (only those not revoked with ``active_only``)."""
        where = " AND revoked_at IS NULL" if active_only else ""
        with self._read() as cur:
            cur.execute(self._sql(f"SELECT {_COLUMNS} FROM {{p}}hw_api_keys WHERE project = ?"
                                  f"{where} ORDER BY created_at, key_id"), (project,))
            return [_key(row) for row in cur.fetchall()]

    def revoke_key(self, project: str, key_id: str, *, now: datetime) -> StoredKey:
        """Mark a key revoked (kept revoked at its first revocation time); NotFoundError
        naming ``headwater keys list`` when the project has no such key."""
        with self._exclusive(project) as cur:
            cur.execute(self._sql("UPDATE {p}hw_api_keys SET revoked_at = ? WHERE "
                                  "project = ? AND key_id = ? AND revoked_at IS NULL"),
                        (self._time_param(now), project, key_id))
            cur.execute(self._sql(f"SELECT {_COLUMNS} FROM {{p}}hw_api_keys WHERE "
                                  "project = ? AND key_id = ?"), (project, key_id))
            row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"no API key with id {key_id!r} in project '{project}'. "
                                "Fix: see the ids with 'headwater keys list'")
        return _key(row)


def key_tables(backend: object) -> KeyTables:
    """``backend`` (a registry's ``backend``) as :class:`KeyTables`; RegistryError for a
    backend without them."""
    if not isinstance(backend, KeyTables):
        raise RegistryError(f"the registry backend {type(backend).__name__} keeps no API "
                            "keys. Fix: use the SQLite or PostgreSQL registry")
    return backend


def _key(row: Any) -> StoredKey:
    key_id, name, digest, scopes, created, revoked = row
    return StoredKey(key_id, name, digest, tuple(s for s in scopes.split(",") if s),
                     stored_time(created), optional_stored_time(revoked))
