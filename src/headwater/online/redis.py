"""The production online store: Redis.

Layout: one hash per entity key, ``hw:<project>:{<entity key>}``, with one field per feature
view holding that view's record. The braces are a Redis Cluster hash tag, so every view of an
entity lives in one slot, and a read of several views of one entity is one ``HMGET``. A read
sends all its ``HMGET`` commands in one pipeline: one round trip.

Writes go through a Lua script that compares the first
:data:`~headwater.online.encoding.ORDER_BYTES` bytes of the stored and the new record byte by
byte (Lua's string ``<`` follows the server locale) and replaces only when the new one does
not sort lower. The script is called by ``EVALSHA``, pipelined 1,000 records at a time, and
loaded again when Redis answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``).

Commands are packed with hiredis and sent on connections of a redis-py pool; that pool
replaces connections that a restarted server closed, so the store recovers by itself once
Redis is back. A connection that served a request cleanly goes back on the store's own idle
stack rather than through the pool's bookkeeping (about 7 us a request): before reuse it gets
the pool's own check (``can_read``: bytes pending, or closed by the server), and one that
fails the check, or fails a request, is disconnected and handed back to the pool. Connection
errors and timeouts (2 s) become :class:`~headwater.errors.StoreUnavailableError` naming the
URL, never its password.

``update`` (the read-modify-write of tile records, exactly once) is optimistic: on one
connection, ``WATCH`` the entity hashes and the scope's marker key, read the records (one
script doing an ``HGET`` per entity, so one reply for them all) and which ids are marked
(``ZMSCORE``), run ``modify`` in Python, then ``MULTI``, a script doing an ``HSET`` per
changed record, ``ZREMRANGEBYSCORE``, ``ZADD``, ``EXEC``. (``EVAL``, not ``EVALSHA``: in a
transaction a missing script would fail alone while the markers are written.) Redis
aborts the ``EXEC`` when a watched key changed meanwhile; the update then reads again and
retries (64 attempts at most, with a short random backoff) before a StoreUnavailableError.
Each scope's markers are one sorted set, ``hw:<project>:markers:<scope>``, scored by the
applied time in microseconds.
One transaction spans keys of several hash slots: on Redis Cluster the writers of a scope
must be on one node (as with a single server).
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, cast

import hiredis
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headwater.config import redact_url
from headwater.errors import ConfigError, StoreUnavailableError
from headwater.online import check_modified, check_update, check_write_batch
from headwater.online.base import MARKER_RETENTION, Modify, ViewKeys
from headwater.online.encoding import ORDER_BYTES

# KEYS[1]: the entity hash; ARGV[1]: the view (field); ARGV[2]: the new record.
_CAS_SCRIPT = f"""
local old = redis.call('HGET', KEYS[1], ARGV[1])
local new = ARGV[2]
if old then
  for i = 1, {ORDER_BYTES} do
    local a, b = string.byte(new, i), string.byte(old, i)
    if a ~= b then
      if a == nil or (b ~= nil and a < b) then return 0 end
      break
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
""".encode()
_CAS_SHA = hashlib.sha1(_CAS_SCRIPT).hexdigest().encode()

# KEYS: entity hashes; ARGV[1]: the view (field). The records, nil where none.
_READ_SCRIPT = b"""
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGET', KEYS[i], ARGV[1]) end
return out
"""
# KEYS: entity hashes; ARGV[1]: the view (field), ARGV[i + 1]: the record of KEYS[i].
_WRITE_SCRIPT = b"""
for i = 1, #KEYS do redis.call('HSET', KEYS[i], ARGV[1], ARGV[i + 1]) end
return #KEYS
"""

_TIMEOUT_S = 2.0
_WRITE_PIPELINE = 1_000
_SCAN_COUNT = 1_000
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)

_UPDATE_ATTEMPTS = 64
_BACKOFF_S = 0.001
_BACKOFF_MAX_S = 0.05


def _exchange(conn: Any, commands: list[bytes]) -> list[Any]:
    """Send packed commands in one write and read one reply each (errors raise)."""
    conn.send_packed_command([b"".join(commands)], check_health=False)
    return [conn.read_response() for _ in commands]


# hiredis's stub types the argument as a 1-tuple; it packs any tuple of bytes, str and numbers.
_pack = cast("Callable[[tuple[Any, ...]], bytes]", hiredis.pack_command)


class RedisOnlineStore:
    """Online records in Redis, namespaced by project; safe to share across threads."""

    def __init__(self, url: str, project: str, *, timeout: float = _TIMEOUT_S,
                 marker_retention: timedelta = MARKER_RETENTION) -> None:
        self.url = url
        self.project = project
        self._safe_url = redact_url(url)
        self._prefix = b"hw:" + project.encode() + b":{"
        self._markers = b"hw:" + project.encode() + b":markers:"
        self._retention_us = marker_retention // timedelta(microseconds=1)
        try:
            self._pool = redis.ConnectionPool.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout)
        except ValueError as exc:
            raise ConfigError(
                f"the Redis online store URL {self._safe_url} is invalid: {exc}. Fix: set "
                "'online: url:' in headwater.yaml to redis://host:port/db") from exc
        # Connections taken from the pool that served cleanly and sit idle; list.pop and
        # list.append are atomic, so threads share it without a lock.
        self._idle: list[Any] = []
        self._pid = os.getpid()

    def write(self, view: str, keys: Sequence[bytes], records: Sequence[bytes]) -> int:
        """Compare-and-set each record; returns how many were stored."""
        check_write_batch(view, keys, records)
        field = view.encode()
        prefix = self._prefix
        stored = 0
        for start in range(0, len(keys), _WRITE_PIPELINE):
            commands = [
                _pack((b"EVALSHA", _CAS_SHA, 1, prefix + key + b"}", field, record))
                for key, record in zip(keys[start:start + _WRITE_PIPELINE],
                                       records[start:start + _WRITE_PIPELINE], strict=True)
            ]
            replies = self._round_trip(commands, f"write view '{view}' to",
                                       error_replies=True)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                self._round_trip([_pack((b"SCRIPT", b"LOAD", _CAS_SCRIPT))],
                                 "load the write script into")
                retried = self._round_trip([commands[i] for i in missing],
                                           f"write view '{view}' to")
                for i, reply in zip(missing, retried, strict=True):
                    replies[i] = reply
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise self._refused(f"write view '{view}' to", reply)
                stored += reply
        return stored

    def read(self, requests: Sequence[ViewKeys]) -> list[list[bytes | None]]:
        """For each request, the stored record of each key (None if none), in order: one
        ``HMGET`` per distinct entity key, all in one pipeline."""
        prefix = self._prefix
        if len(requests) == 1:
            request = requests[0]
            field = request.view.encode()
            replies = self._round_trip(
                [_pack((b"HMGET", prefix + key + b"}", field)) for key in request.keys], "read")
            return [[reply[0] for reply in replies]]
        fields_of: dict[bytes, dict[bytes, int]] = {}
        for request in requests:
            field = request.view.encode()
            for key in request.keys:
                fields = fields_of.get(key)
                if fields is None:
                    fields_of[key] = {field: 0}
                elif field not in fields:
                    fields[field] = len(fields)
        commands = [_pack((b"HMGET", prefix + key + b"}", *fields))
                    for key, fields in fields_of.items()]
        replies = self._round_trip(commands, "read")
        values_of = dict(zip(fields_of, replies, strict=True))
        out: list[list[bytes | None]] = []
        for request in requests:
            field = request.view.encode()
            row: list[bytes | None] = []
            for key in request.keys:
                row.append(values_of[key][fields_of[key][field]])
            out.append(row)
        return out

    def update(self, view: str, keys: Sequence[bytes], modify: Modify, *,
               scope: str | None = None, ids: Sequence[str] = (),
               markers: Sequence[str] = ()) -> int:
        """Read, ``modify`` and write ``keys`` and mark ``ids`` and ``markers`` under
        ``scope`` as one optimistic transaction (see the module docstring); retried on a
        conflicting write, up to a bound."""
        check_update(view, scope, ids, markers)
        keys = list(dict.fromkeys(keys))
        checked = list(dict.fromkeys([*ids, *markers]))
        field = view.encode()
        hashes = [self._prefix + key + b"}" for key in keys]
        marks = None if scope is None else self._markers_key(scope)
        action = f"update view '{view}' in"
        for attempt in range(_UPDATE_ATTEMPTS):
            with self._session(action) as conn:
                watched = [*hashes] if marks is None else [*hashes, marks]
                reads = [_pack((b"WATCH", *watched))] if watched else []
                if marks is not None and checked:
                    reads.append(_pack((b"ZMSCORE", marks, *checked)))
                if hashes:
                    reads.append(_pack((b"EVAL", _READ_SCRIPT, len(hashes), *hashes, field)))
                replies = _exchange(conn, reads)[1 if watched else 0:]
                now = time.time_ns() // 1_000
                marked: set[str] = set()
                if marks is not None and checked:
                    oldest = now - self._retention_us
                    marked = {marker for marker, score in zip(checked, replies.pop(0),
                                                              strict=True)
                              if score is not None and float(score) > oldest}
                stored = replies[0] if hashes else []
                try:
                    records = modify(marked, dict(zip(keys, stored, strict=True)))
                    check_modified(view, keys, records)
                except BaseException:
                    _exchange(conn, [_pack((b"UNWATCH",))])
                    raise
                writes = [_pack((b"MULTI",))]
                if records:
                    writes.append(_pack((b"EVAL", _WRITE_SCRIPT, len(records),
                                         *[self._prefix + key + b"}" for key in records],
                                         field, *records.values())))
                if marks is not None:
                    writes.append(_pack((b"ZREMRANGEBYSCORE", marks, b"-inf",
                                         now - self._retention_us)))
                    if checked:
                        writes.append(_pack((b"ZADD", marks, b"NX",
                                             *[x for m in checked for x in (now, m)])))
                writes.append(_pack((b"EXEC",)))
                done = _exchange(conn, writes)[-1]
            if done is not None:
                failed = next((r for r in done if isinstance(r, ResponseError)), None)
                if failed is not None:
                    raise self._refused(action, failed)
                return len(records)
            # a watched key changed since we read it: read again, after a short random pause
            time.sleep(random.uniform(0, min(_BACKOFF_S * 2**attempt, _BACKOFF_MAX_S)))
        raise StoreUnavailableError(
            f"cannot {action} the Redis online store at {self._safe_url}: other writers "
            f"changed the same entities or markers during {_UPDATE_ATTEMPTS} attempts in a "
            "row. Fix: send each entity's events through fewer concurrent writers (one "
            "consumer per partition), or apply smaller batches")

    def markers_present(self, scope: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are marked under ``scope`` within the retention (one
        ``ZMSCORE``)."""
        checked = list(dict.fromkeys(ids))
        if not checked:
            return set()
        (scores,) = self._round_trip(
            [_pack((b"ZMSCORE", self._markers_key(scope), *checked))], "read markers from")
        oldest = time.time_ns() // 1_000 - self._retention_us
        return {marker for marker, score in zip(checked, scores, strict=True)
                if score is not None and float(score) > oldest}

    def _markers_key(self, scope: str) -> bytes:
        return self._markers + scope.encode()

    @contextmanager
    def _session(self, action: str) -> Iterator[Any]:
        """A connection for several round trips; back to the idle stack when the block
        ends cleanly, else disconnected (it may hold a WATCH or unread replies)."""
        try:
            conn = self._connection()
        except _UNAVAILABLE as exc:
            raise self._unavailable(action, exc) from exc
        clean = False
        try:
            yield conn
            clean = True
        except _UNAVAILABLE as exc:
            raise self._unavailable(action, exc) from exc
        except ResponseError as exc:
            raise self._refused(action, exc) from exc
        finally:
            if clean:
                self._idle.append(conn)
            else:
                conn.disconnect()
                self._pool.release(conn)

    def delete_view(self, view: str) -> int:
        """Remove ``view``'s field from every entity hash of the project (SCAN, then HDEL)."""
        field = view.encode()
        pattern = self._prefix + b"*"
        action = f"delete view '{view}' from"
        removed = 0
        cursor: bytes | int = 0
        while True:
            (reply,) = self._round_trip(
                [_pack((b"SCAN", cursor, b"MATCH", pattern, b"COUNT", _SCAN_COUNT))], action)
            cursor, keys = reply
            if keys:
                removed += sum(self._round_trip(
                    [_pack((b"HDEL", key, field)) for key in keys], action))
            if int(cursor) == 0:
                return removed

    def ping(self) -> None:
        """Raise StoreUnavailableError if Redis cannot be reached."""
        self._round_trip([_pack((b"PING",))], "reach")

    def close(self) -> None:
        """Close the pooled connections (a later call would open new ones)."""
        self._idle.clear()
        self._pool.disconnect()  # also those that were idle here: the pool counts them in use

    def _connection(self) -> Any:
        """An idle connection that passes the pool's readiness check, else one from the
        pool (which connects it)."""
        idle = self._idle
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use
            idle.clear()
            self._pid = os.getpid()
        while idle:
            try:
                conn = idle.pop()
            except IndexError:  # another thread took the last one
                break
            try:
                if not conn.can_read():
                    return conn
            except _UNAVAILABLE:
                pass
            conn.disconnect()  # closed by the server, or holding unread bytes
            self._pool.release(conn)
        return self._pool.get_connection()

    def _round_trip(self, commands: list[bytes], action: str,
                    *, error_replies: bool = False) -> list[Any]:
        """Send packed commands in one write and read one reply each. An error reply raises
        StoreUnavailableError once all replies are read, or with ``error_replies`` comes back
        as a ResponseError value. A broken connection is dropped, never reused."""
        if not commands:
            return []
        try:
            conn = self._connection()
        except _UNAVAILABLE as exc:
            raise self._unavailable(action, exc) from exc
        clean = False
        error: ResponseError | None = None
        try:
            conn.send_packed_command(
                commands if len(commands) == 1 else [b"".join(commands)], check_health=False)
            replies: list[Any] = []
            append = replies.append
            read_response = conn.read_response
            for _ in range(len(commands)):
                try:
                    append(read_response())
                except ResponseError as exc:
                    append(exc)
                    error = error or exc
            clean = True
        except _UNAVAILABLE as exc:
            raise self._unavailable(action, exc) from exc
        finally:
            if clean:
                self._idle.append(conn)
            else:
                conn.disconnect()
                self._pool.release(conn)
        if error is not None and not error_replies:
            raise self._refused(action, error)
        return replies

    def _unavailable(self, action: str, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"cannot {action} the Redis online store at {self._safe_url}: {exc}. Fix: start "
            "Redis or make it reachable from here, or set 'online: url:' in headwater.yaml")

    def _refused(self, action: str, error: ResponseError) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"Redis at {self._safe_url} refused to {action} the online store: {error}. "
            "Fix: check the server (memory limit, read-only replica, ACL) and that nothing "
            f"else writes keys under 'hw:{self.project}:'")


