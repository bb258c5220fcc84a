"""The embedded online store: one SQLite file (``.headwater/online.db`` by default).

One ``WITHOUT ROWID`` table keyed by ``(view, key)`` holds each record blob. The "never
replace a newer record" rule is a single upsert whose ``WHERE`` compares the first
:data:`~headwater.online.encoding.ORDER_BYTES` bytes of both blobs; SQLite compares blobs with
``memcmp``, which is exactly the order the encoding gives. Writers serialize on
``BEGIN IMMEDIATE`` (other processes wait up to the busy timeout); WAL lets reads go on
meanwhile. ``synchronous=NORMAL``: a power cut may lose the last commits, never corrupt the
file, and everything here can be materialized again.

A read is one statement: a ``key IN (...)`` list for one view, one such select per view joined
by ``UNION ALL`` for several. Key lists are padded with a repeated key to the next power of
two, so a handful of prepared statements serve every size (SQLite deduplicates an ``IN``
list, so padding costs no lookups). Only a read of more keys than SQLite accepts as parameters
in one statement is split, inside one read transaction.

``update`` (the read-modify-write of tile records, exactly once) is one ``BEGIN IMMEDIATE``
transaction: prune the scope's markers older than the retention, read which ids are marked
and the stored records, run ``modify``, write its records and mark the ids. Markers live in
``hw_markers (scope, marker, applied)``, applied in microseconds since the epoch.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from itertools import repeat
from pathlib import Path
from typing import Any

from headwater.errors import StoreUnavailableError
from headwater.online import check_modified, check_update, check_write_batch
from headwater.online.base import MARKER_RETENTION, Modify, ViewKeys
from headwater.online.encoding import ORDER_BYTES

_DDL = """CREATE TABLE IF NOT EXISTS hw_online (
    view TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (view, key)) WITHOUT ROWID"""
_UPSERT = (
    "INSERT INTO hw_online (view, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (view, key) DO UPDATE SET value = excluded.value "
    f"WHERE substr(excluded.value, 1, {ORDER_BYTES}) >= substr(value, 1, {ORDER_BYTES})"
)
_MARKERS_DDL = """CREATE TABLE IF NOT EXISTS hw_markers (
    scope TEXT NOT NULL, marker TEXT NOT NULL, applied INTEGER NOT NULL,
    PRIMARY KEY (scope, marker)) WITHOUT ROWID"""
_MARKERS_INDEX = "CREATE INDEX IF NOT EXISTS hw_markers_applied ON hw_markers (scope, applied)"
_MARK = "INSERT OR IGNORE INTO hw_markers (scope, marker, applied) VALUES (?, ?, ?)"
_PRUNE = "DELETE FROM hw_markers WHERE scope = ? AND applied <= ?"
_REPLACE = ("INSERT INTO hw_online (view, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (view, key) DO UPDATE SET value = excluded.value")
_GET_ONE = "SELECT value FROM hw_online WHERE view = ? AND key = ?"
_DELETE_VIEW = "DELETE FROM hw_online WHERE view = ?"

_SELECT_KEYS = "SELECT key, value FROM hw_online WHERE view = ? AND key IN ("
_SELECT_MARKERS = "SELECT marker, applied FROM hw_markers WHERE scope = ? AND marker IN ("

_BUSY_TIMEOUT_S = 30.0
_WRITE_BATCH = 10_000  # rows per write transaction
_STATEMENT_CACHE = 256
_UNION_MAX = 64  # views per UNION ALL statement (SQLite allows 500 compound selects)


class SQLiteOnlineStore:
    """Online records in one SQLite file; safe across threads (one lock) and processes."""

    def __init__(self, path: str | Path, *,
                 marker_retention: timedelta = MARKER_RETENTION) -> None:
        self.path = Path(path)
        self._retention_us = marker_retention // timedelta(microseconds=1)
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                check_same_thread=False, cached_statements=_STATEMENT_CACHE,
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_DDL)
            self._conn.execute(_MARKERS_DDL)
            self._conn.execute(_MARKERS_INDEX)
        except (OSError, sqlite3.Error) as exc:
            raise self._unavailable("open", exc) from exc
        self._cursor = self._conn.cursor()
        # The most keys one statement carries: a power of two, at most half of SQLite's
        # parameter limit, which leaves room for the view names.
        limit = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 2
        self._max_keys = 1 << (limit.bit_length() - 1)
        self._in_sql: dict[int, str] = {}
        self._union_sql: dict[tuple[int, ...], str] = {}

    def write(self, view: str, keys: Sequence[bytes], records: Sequence[bytes]) -> int:
        """Upsert each record unless the stored one sorts higher; returns how many were
        stored. Each batch of up to 10,000 rows is one transaction."""
        check_write_batch(view, keys, records)
        stored = 0
        try:
            with self._lock:
                conn = self._conn
                for start in range(0, len(keys), _WRITE_BATCH):
                    end = start + _WRITE_BATCH
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        # lengths were checked; repeat() is endless, hence strict=False
                        cur = conn.executemany(
                            _UPSERT, zip(repeat(view), keys[start:end], records[start:end],
                                         strict=False))
                        stored += cur.rowcount
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._unavailable(f"write view '{view}' to", exc) from exc
        return stored

    def read(self, requests: Sequence[ViewKeys]) -> list[list[bytes | None]]:
        """For each request, the stored record of each key (None if none), in order."""
        if len(requests) == 1:
            request = requests[0]
            if len(request.keys) == 1:
                try:
                    with self._lock:
                        row = self._cursor.execute(
                            _GET_ONE, (request.view, request.keys[0])).fetchone()
                except sqlite3.Error as exc:
                    raise self._unavailable("read", exc) from exc
                return [[None if row is None else row[0]]]
            found = self._read_one_view(request.view, request.keys)
            return [[found.get(key) for key in request.keys]]
        found_of = self._read_views(requests)
        out: list[list[bytes | None]] = []
        for request in requests:
            records = found_of.get(request.view)
            out.append([records.get(key) for key in request.keys] if records is not None
                       else [None] * len(request.keys))
        return out

    def update(self, view: str, keys: Sequence[bytes], modify: Modify, *,
               scope: str | None = None, ids: Sequence[str] = (),
               markers: Sequence[str] = (), likely_unmarked: bool = False,
               defer: bool = False) -> int:
        """Read, ``modify`` and write ``keys`` and mark ``ids`` and ``markers`` under
        ``scope``, in one ``BEGIN IMMEDIATE`` transaction (see the protocol; reading the
        marks there costs little, so ``likely_unmarked`` changes nothing; the transaction is
        local and short, so ``defer`` changes nothing either: every update is settled)."""
        check_update(view, scope, ids, markers)
        keys = list(dict.fromkeys(keys))
        checked = list(dict.fromkeys([*ids, *markers]))
        try:
            with self._lock:
                cursor = self._cursor
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    now = time.time_ns() // 1_000
                    marked: set[str] = set()
                    if scope is not None:
                        cursor.execute(_PRUNE, (scope, now - self._retention_us))
                        marked = self._marked(scope, checked)
                    found = self._select(_SELECT_KEYS, view, keys)
                    records = modify(marked, {key: found.get(key) for key in keys})
                    check_modified(view, keys, records)
                    cursor.executemany(_REPLACE, zip(repeat(view), records, records.values(),
                                                     strict=False))
                    if scope is not None:
                        cursor.executemany(_MARK, zip(repeat(scope), checked, repeat(now),
                                                      strict=False))
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._unavailable(f"update view '{view}' in", exc) from exc
        return len(records)

    def settle(self, keep: int = 0) -> None:
        """Nothing to confirm: updates here are never deferred."""

    def pending(self) -> int:
        """Always 0: updates here are never deferred."""
        return 0

    def prefetch(self, view: str, keys: Sequence[bytes]) -> None:
        """Nothing to read ahead: an update reads within its transaction."""

    def markers_present(self, scope: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are marked under ``scope`` within the retention."""
        now = time.time_ns() // 1_000
        try:
            with self._lock:
                self._cursor.execute("BEGIN")
                try:
                    return {marker for marker, applied in self._select(
                        _SELECT_MARKERS, scope, list(dict.fromkeys(ids))).items()
                        if applied > now - self._retention_us}
                finally:
                    self._cursor.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._unavailable("read markers from", exc) from exc

    def _marked(self, scope: str, ids: list[str]) -> set[str]:
        return set(self._select(_SELECT_MARKERS, scope, ids))

    def _select(self, sql: str, first: str, values: list[Any]) -> dict[Any, Any]:
        """``sql`` (a select of two columns ending in ``IN (``) over ``values`` in chunks,
        inside the caller's transaction and lock."""
        found: dict[Any, Any] = {}
        step = self._max_keys
        for start in range(0, len(values), step):
            chunk = values[start:start + step]
            size = 1 << (len(chunk) - 1).bit_length()  # padded: few distinct statements
            marks = ", ".join(repeat("?", size))
            params = [first, *chunk, *repeat(chunk[-1], size - len(chunk))]
            found.update(self._cursor.execute(f"{sql}{marks})", params))
        return found

    def delete_view(self, view: str) -> int:
        """Remove every record of ``view``; returns how many were removed."""
        try:
            with self._lock:
                return self._cursor.execute(_DELETE_VIEW, (view,)).rowcount
        except sqlite3.Error as exc:
            raise self._unavailable(f"delete view '{view}' from", exc) from exc

    def ping(self) -> None:
        """Raise StoreUnavailableError if the file cannot be read."""
        try:
            with self._lock:
                self._cursor.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise self._unavailable("read", exc) from exc

    def close(self) -> None:
        """Close the file; later calls raise StoreUnavailableError."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def _read_one_view(self, view: str, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        n = len(keys)
        if n == 0:
            return {}
        step = self._max_keys
        try:
            with self._lock:
                if n <= step:
                    return dict(self._cursor.execute(*self._in_query(view, keys)))
                found: dict[bytes, bytes] = {}
                self._cursor.execute("BEGIN")
                try:
                    for start in range(0, n, step):
                        found.update(self._cursor.execute(
                            *self._in_query(view, keys[start:start + step])))
                finally:
                    self._cursor.execute("COMMIT")
                return found
        except sqlite3.Error as exc:
            raise self._unavailable(f"read view '{view}' from", exc) from exc

    def _in_query(self, view: str, keys: Sequence[bytes]) -> tuple[str, list[object]]:
        n = len(keys)
        size = 1 << (n - 1).bit_length()
        sql = self._in_sql.get(size)
        if sql is None:
            marks = ", ".join(repeat("?", size))
            sql = f"SELECT key, value FROM hw_online WHERE view = ? AND key IN ({marks})"
            self._in_sql[size] = sql
        params: list[object] = [view, *keys]
        if size > n:
            params.extend(repeat(keys[-1], size - n))
        return sql, params

    def _read_views(self, requests: Sequence[ViewKeys]) -> dict[str, dict[bytes, bytes]]:
        """The stored records of several views: one ``key IN (...)`` select per view, joined
        by ``UNION ALL`` into one statement."""
        keys_of: dict[str, list[bytes]] = {}
        for request in requests:
            if request.keys:
                keys_of.setdefault(request.view, []).extend(request.keys)
        found: dict[str, dict[bytes, bytes]] = {view: {} for view in keys_of}
        if not keys_of:
            return found
        views = list(keys_of)
        sizes = tuple(1 << (len(keys) - 1).bit_length() for keys in keys_of.values())
        try:
            with self._lock:
                if sum(sizes) + len(sizes) <= self._max_keys * 2 and len(sizes) <= _UNION_MAX:
                    sql = self._union_sql.get(sizes)
                    if sql is None:
                        if len(self._union_sql) >= _STATEMENT_CACHE:
                            self._union_sql.clear()  # bounded, like SQLite's statement cache
                        sql = self._union_sql[sizes] = " UNION ALL ".join(
                            f"SELECT {i}, key, value FROM hw_online WHERE view = ? AND "
                            f"key IN ({', '.join(repeat('?', size))})"
                            for i, size in enumerate(sizes))
                    params: list[object] = []
                    for (view, keys), size in zip(keys_of.items(), sizes, strict=True):
                        params.append(view)
                        params.extend(keys)
                        params.extend(repeat(keys[-1], size - len(keys)))
                    for i, key, value in self._cursor.execute(sql, params):
                        found[views[i]][key] = value
                    return found
                self._cursor.execute("BEGIN")
                try:
                    for view, keys in keys_of.items():
                        for start in range(0, len(keys), self._max_keys):
                            found[view].update(self._cursor.execute(
                                *self._in_query(view, keys[start:start + self._max_keys])))
                finally:
                    self._cursor.execute("COMMIT")
                return found
        except sqlite3.Error as exc:
            raise self._unavailable("read", exc) from exc

    def _unavailable(self, action: str, exc: BaseException) -> StoreUnavailableError:
        if self._closed:
            return StoreUnavailableError(
                f"the SQLite online store {self.path} was closed. Fix: open a new store "
                "with headwater.online.open_online_store(settings)")
        return StoreUnavailableError(
            f"cannot {action} the SQLite online store {self.path}: {exc}. Fix: make sure the "
            "file and its folder are writable and not held locked by another process for "
            f"{_BUSY_TIMEOUT_S:.0f}s, or set 'online: path:' in headwater.yaml to another file")

