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

``update`` (the read-modify-write of tile records, exactly once) is optimistic. Each record
it writes gets a *version* in the field ``<view>#v`` of the same hash: a random token, new at
every write, so equal versions mean equal records. The store keeps the records it last read
or wrote with their versions (:mod:`~headwater.online.record_cache`). An update reads (one
script, one reply for all entities) each entity's version and, unless it is the version the
store holds, the record, and which ids are marked (``ZMSCORE``); runs ``modify`` in Python;
then commits with one script, atomic as every script is: it checks that each version read is
still the stored one (for a record without a version, one a plain ``write`` stored, the
record byte for byte; absent still absent) and that no id found unmarked was marked
meanwhile, and only then does an ``HSET`` of record and new version per changed record,
prunes the markers past the retention (``ZREMRANGEBYSCORE``) and marks the ids (``ZADD
NX``). So a batch sends each record once and receives only the records someone else changed.
A failed check writes nothing: the update reads again and retries (64 attempts at most, with
a short random backoff) before a StoreUnavailableError. (Not ``WATCH``: Redis checks each
watched key against all the others a connection watches, so watching a batch's thousands of
entities costs seconds.) A plain ``write`` that replaces a record of another definition
generation deletes its version, so an update that read the older one fails its check; within
one generation the views ``write`` serves (latest values) and the views ``update`` serves
(tiles) are different views. Upgrading from a release without versions: stop every stream
consumer first (one that writes without versions would not be seen by one that holds records
by version). Each scope's markers are one sorted
set, ``hw:<project>:markers:<scope>``, scored by the applied time in microseconds.
One transaction spans keys of several hash slots: on Redis Cluster the writers of a scope
must be on one node (as with a single server).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import compress
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
from headwater.online.record_cache import DEFAULT_MAX_BYTES, RecordCache

VERSION_SUFFIX = b"#v"
"""A record's version is in the field of its view's name and this suffix, in the entity's
hash (a view name never holds ``#``)."""

# KEYS[1]: the entity hash; ARGV[1]: the view (field); ARGV[2]: the new record. A record
# of another definition generation loses its version (the field '<view>#v').
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
if old and string.sub(old, 1, 4) ~= string.sub(new, 1, 4) then
  redis.call('HDEL', KEYS[1], ARGV[1] .. '#v')
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
""".encode()
_CAS_SHA = hashlib.sha1(_CAS_SCRIPT).hexdigest().encode()

# KEYS: entity hashes; ARGV[1]: the view (field), ARGV[2]: its version field, then per hash
# the version whose record the caller holds ('' for none). Per hash two replies: the stored
# version (nil if none), then 1 when it is the one the caller holds (the record is not sent),
# else the record (nil if none).
_READ_SCRIPT = b"""
local field, vfield = ARGV[1], ARGV[2]
local out = {}
for i = 1, #KEYS do
  local version = redis.call('HGET', KEYS[i], vfield)
  out[2 * i - 1] = version
  if version and version == ARGV[i + 2] then
    out[2 * i] = 1
  else
    out[2 * i] = redis.call('HGET', KEYS[i], field)
  end
end
return out
"""
# KEYS: the markers key, then the n entity hashes read. ARGV: the view (field), its version
# field, now, the oldest score still marking, 1 with a scope (else 0), n, c, a string of c
# bytes ('1' for an id read as unmarked, which must still be), and the prefix of the new
# versions; then per hash read what it held (its version; '' when it had neither version nor
# record; a NUL byte and the record when it had a record without a version) and its new
# record ('' to leave it), whose version is the prefix and the hash's position; then the c
# ids to mark. 1 when committed, 0 (nothing written) when something read has changed since.
_COMMIT_SCRIPT = b"""
local field, vfield, now, oldest = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local scoped, n, c = ARGV[5] == '1', tonumber(ARGV[6]), tonumber(ARGV[7])
local unmarked, prefix = ARGV[8], ARGV[9]
for i = 1, n do
  local key, held = KEYS[i + 1], ARGV[8 + 2 * i]
  local version = redis.call('HGET', key, vfield) or ''
  if string.byte(held, 1) == 0 then
    if version ~= '' or redis.call('HGET', key, field) ~= string.sub(held, 2) then return 0 end
  elseif version ~= held then
    return 0
  elseif held == '' and redis.call('HEXISTS', key, field) == 1 then
    return 0
  end
end
local ids_at = 9 + 2 * n
if string.find(unmarked, '1', 1, true) then
  for i = 1, c, 1000 do
    local last = math.min(i + 999, c)
    local scores = redis.call('ZMSCORE', KEYS[1], unpack(ARGV, ids_at + i, ids_at + last))
    for k = 1, last - i + 1 do
      local score = scores[k]
      if score and string.byte(unmarked, i + k - 1) == 49 and tonumber(score) > oldest then
        return 0
      end
    end
  end
end
for i = 1, n do
  local record = ARGV[9 + 2 * i]
  if record ~= '' then
    redis.call('HSET', KEYS[i + 1], field, record, vfield, prefix .. i)
  end
end
if scoped then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', oldest)
  for i = ids_at + 1, ids_at + c, 1000 do
    local args = {}
    for k = i, math.min(i + 999, ids_at + c) do
      args[#args + 1] = now
      args[#args + 1] = ARGV[k]
    end
    redis.call('ZADD', KEYS[1], 'NX', unpack(args))
  end
end
return 1
"""

_TIMEOUT_S = 2.0
_WRITE_PIPELINE = 1_000
_SCAN_COUNT = 1_000
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)

_UPDATE_ATTEMPTS = 64
_BACKOFF_S = 0.001
_BACKOFF_MAX_S = 0.05


# hiredis's stub types the argument as a 1-tuple; it packs any tuple of bytes, str and numbers.
_pack = cast("Callable[[tuple[Any, ...]], bytes]", hiredis.pack_command)


@dataclass(frozen=True)
class _Update:
    """One call of :meth:`RedisOnlineStore.update`, kept to be run again."""

    view: str
    keys: list[bytes]
    modify: Modify
    scope: str | None
    checked: list[str]  # the ids, then the markers, each once
    likely_unmarked: bool
    field: bytes
    vfield: bytes
    hashes: list[bytes]
    marks_key: bytes
    action: str


@dataclass(frozen=True)
class _Read:
    """What an update read: per key the stored version and record, and the marked ids."""

    versions: list[bytes | None]
    stored: list[bytes | None]
    marked: set[str]


@dataclass(frozen=True)
class _Commit:
    """An update's commit: what it read, the record per key (b"" to leave it), the prefix
    of the new versions, how many records ``modify`` returned, and the packed call."""

    update: _Update
    read: _Read
    new: list[bytes]
    prefix: bytes
    stored: int
    command: bytes


@dataclass(frozen=True)
class _Pending:
    """A deferred commit sent on ``conn`` whose reply is not read yet."""

    commit: _Commit
    conn: Any


class RedisOnlineStore:
    """Online records in Redis, namespaced by project; safe to share across threads."""

    def __init__(self, url: str, project: str, *, timeout: float = _TIMEOUT_S,
                 marker_retention: timedelta = MARKER_RETENTION,
                 cache_bytes: int = DEFAULT_MAX_BYTES) -> None:
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
        self._cache = RecordCache(cache_bytes)
        self._local = threading.local()  # .pending: this thread's deferred updates

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
               markers: Sequence[str] = (), likely_unmarked: bool = False,
               defer: bool = False) -> int:
        """Read, ``modify`` and write ``keys`` and mark ``ids`` and ``markers`` under
        ``scope`` as one optimistic transaction (see the module docstring); retried on a
        conflicting write, up to a bound. With ``likely_unmarked`` the first attempt does
        not read the marks: its commit checks that every id is still unmarked.

        With ``defer`` the commit is sent and not waited for (:meth:`settle` confirms it).
        When this client holds every key's record (it read or wrote them last) and no mark
        needs reading, nothing is read either: ``modify`` runs on the held records, those
        of a deferred update still unconfirmed included, and the commit's checks tell
        whether they were current. So a stream consumer merges its next batch while the
        server applies the one before."""
        check_update(view, scope, ids, markers)
        unique = list(dict.fromkeys(keys))
        field = view.encode()
        update = _Update(
            view, unique, modify, scope, list(dict.fromkeys([*ids, *markers])),
            likely_unmarked, field, field + VERSION_SUFFIX,
            [self._prefix + key + b"}" for key in unique],
            # without a scope the markers key is a placeholder the script never touches
            self._markers_key(scope) if scope is not None else self._markers + b"-",
            f"update view '{view}' in")
        if defer:
            return self._send_deferred(update)
        return self._update_now(update)

    def _update_now(self, update: _Update, *, first_attempt: int = 0) -> int:
        """Run ``update`` to its confirmed end: read, modify, commit; again on a conflict."""
        for attempt in range(first_attempt, _UPDATE_ATTEMPTS):
            read = self._read_for(update, read_marks=not (update.likely_unmarked
                                                          and attempt == 0))
            commit = self._prepare_commit(update, read)
            (done,) = self._round_trip([commit.command], update.action)
            if done:
                self._remember(commit)
                return commit.stored
            # something read changed since: read again, after a short random pause
            time.sleep(random.uniform(0, min(_BACKOFF_S * 2**attempt, _BACKOFF_MAX_S)))
        raise StoreUnavailableError(
            f"cannot {update.action} the Redis online store at {self._safe_url}: other "
            f"writers changed the same entities or markers during {_UPDATE_ATTEMPTS} attempts "
            "in a row. Fix: send each entity's events through fewer concurrent writers (one "
            "consumer per partition), or apply smaller batches")

    def _read_for(self, update: _Update, *, read_marks: bool) -> _Read:
        """One round trip: the marks of the update's ids (when ``read_marks`` and it has a
        scope) and each key's version, with its record unless it is the one held."""
        read_marks = read_marks and update.scope is not None and bool(update.checked)
        held = self._cache.held(update.field, update.keys)
        reads = []
        if read_marks:
            reads.append(_pack((b"ZMSCORE", update.marks_key, *update.checked)))
        if update.hashes:
            reads.append(_pack((b"EVAL", _READ_SCRIPT, len(update.hashes), *update.hashes,
                                update.field, update.vfield,
                                *[b"" if h is None else h[0] for h in held])))
        replies = self._round_trip(reads, update.action)
        marked: set[str] = set()
        if read_marks:
            oldest = time.time_ns() // 1_000 - self._retention_us
            marked = {marker for marker, score in zip(update.checked, replies.pop(0),
                                                      strict=True)
                      if score is not None and float(score) > oldest}
        flat = replies[0] if update.hashes else []
        stored: list[bytes | None] = [
            h[1] if data == 1 and h is not None else data
            for data, h in zip(flat[1::2], held, strict=True)]
        return _Read(flat[0::2], stored, marked)

    def _prepare_commit(self, update: _Update, read: _Read) -> _Commit:
        """Run ``modify`` on what was read and pack the commit script's call."""
        records = update.modify(read.marked, dict(zip(update.keys, read.stored, strict=True)))
        check_modified(update.view, update.keys, records)
        now = time.time_ns() // 1_000
        marking = update.checked if update.scope is not None else []
        unmarked = bytes(0x30 if m in read.marked else 0x31 for m in marking)
        prefix = os.urandom(6).hex().encode()
        new = [records.get(key, b"") for key in update.keys]
        command = _pack((
            b"EVAL", _COMMIT_SCRIPT, 1 + len(update.hashes), update.marks_key, *update.hashes,
            update.field, update.vfield, now, now - self._retention_us,
            int(update.scope is not None), len(update.hashes), len(marking), unmarked, prefix,
            *[x for version, data, record in zip(read.versions, read.stored, new, strict=True)
              for x in (version if version is not None
                        else b"" if data is None else b"\0" + data, record)],
            *marking))
        return _Commit(update, read, new, prefix, len(records), command)

    def _send_deferred(self, update: _Update) -> int:
        """Send ``update``'s commit without waiting for its reply (:meth:`settle`)."""
        held = self._cache.held(update.field, update.keys)
        no_marks = update.likely_unmarked or update.scope is None or not update.checked
        if update.keys and no_marks and all(held):
            entries = cast("list[tuple[bytes, bytes]]", held)
            read = _Read([h[0] for h in entries], [h[1] for h in entries], set())
        else:
            read = self._read_for(update, read_marks=not update.likely_unmarked)
        commit = self._prepare_commit(update, read)
        pending = self._pending()
        # after the commits before it on the same connection, so Redis runs them in order
        conn = pending[-1].conn if pending else None
        try:
            if conn is None:
                conn = self._connection()
            conn.send_packed_command([commit.command], check_health=False)
        except _UNAVAILABLE as exc:
            self._abandon(conn)
            raise self._unavailable(update.action, exc) from exc
        self._remember(commit)  # a failed commit forgets these again when settled
        pending.append(_Pending(commit, conn))
        return commit.stored

    def settle(self, keep: int = 0) -> None:
        """Confirm this thread's deferred updates, oldest first, until ``keep`` remain. A
        commit whose checks failed (something it read, or held, changed meanwhile) is run
        again now, reading what is stored, as :meth:`update` does; so after this, every
        settled update took effect exactly once (its ``modify`` may have run again).
        Raises StoreUnavailableError when Redis cannot be reached or refuses; the updates
        not confirmed by then may or may not have taken effect (their marks say which)."""
        pending = self._pending()
        while len(pending) > keep:
            first = pending.popleft()
            commit, conn = first.commit, first.conn
            try:
                done = conn.read_response()
            except ResponseError as exc:
                self._abandon(conn)
                raise self._refused(commit.update.action, exc) from exc
            except _UNAVAILABLE as exc:
                self._abandon(conn)
                raise self._unavailable(commit.update.action, exc) from exc
            if not pending or pending[-1].conn is not conn:
                self._idle.append(conn)
            if not done:
                self._cache.forget(commit.update.field, commit.update.keys)
                self._update_now(commit.update, first_attempt=1)

    def pending(self) -> int:
        """How many deferred updates of this thread are not settled yet."""
        return len(self._pending())

    def _pending(self) -> deque[_Pending]:
        try:
            return cast("deque[_Pending]", self._local.pending)
        except AttributeError:
            self._local.pending = deque()
            return cast("deque[_Pending]", self._local.pending)

    def _abandon(self, conn: Any) -> None:
        """After an error on a deferred commit's connection: drop it and every deferred
        update of this thread (their outcome is unknown) and forget what they held."""
        pending = self._pending()
        for entry in pending:
            self._cache.forget(entry.commit.update.field, entry.commit.update.keys)
        conns = {id(entry.conn): entry.conn for entry in pending}
        if conn is not None:
            conns[id(conn)] = conn
        pending.clear()
        for broken in conns.values():
            broken.disconnect()
            self._pool.release(broken)

    def _remember(self, commit: _Commit) -> None:
        """Hold what a commit leaves: the records it writes at their new versions (the
        prefix and the position from 1, as the commit script names them) and those it read
        at a version and leaves."""
        keys, new = commit.update.keys, commit.new
        held_keys = list(compress(keys, new))  # b"" (not written) is false
        held_versions = [b"%s%d" % (commit.prefix, i) for i, record in enumerate(new, 1)
                         if record]
        held_records = list(filter(None, new))
        if len(held_keys) < len(keys):  # some were read and left
            for key, version, data, record in zip(keys, commit.read.versions,
                                                  commit.read.stored, new, strict=True):
                if not record and version is not None and data is not None:
                    held_keys.append(key)
                    held_versions.append(version)
                    held_records.append(data)
        self._cache.keep(commit.update.field, held_keys, held_versions, held_records)

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

    def delete_view(self, view: str) -> int:
        """Remove ``view``'s record and its version from every entity hash of the project
        (SCAN, then one HDEL of both per hash); returns how many hashes held a record or a
        version of the view."""
        field = view.encode()
        vfield = field + VERSION_SUFFIX
        self._cache.forget(field)
        pattern = self._prefix + b"*"
        action = f"delete view '{view}' from"
        removed = 0
        cursor: bytes | int = 0
        while True:
            (reply,) = self._round_trip(
                [_pack((b"SCAN", cursor, b"MATCH", pattern, b"COUNT", _SCAN_COUNT))], action)
            cursor, keys = reply
            if keys:
                removed += sum(1 for reply in self._round_trip(
                    [_pack((b"HDEL", key, field, vfield)) for key in keys], action) if reply)
            if int(cursor) == 0:
                return removed

    def ping(self) -> None:
        """Raise StoreUnavailableError if Redis cannot be reached."""
        self._round_trip([_pack((b"PING",))], "reach")

    def close(self) -> None:
        """Close the pooled connections (a later call would open new ones); this thread's
        unsettled deferred updates are dropped (their outcome is unknown)."""
        self._abandon(None)
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


