"""The production online store: one Redis server (:mod:`~headwater.online.redis_cluster`
for Redis Cluster).

Layout: one hash per entity key, ``hw:<project>:{<entity key>}``, with one field per feature
view holding that view's record. The braces are a Redis Cluster hash tag, so every view of an
entity lives in one slot, and a read of several views of one entity is one ``HMGET``. A read
sends all its ``HMGET`` commands in one pipeline: one round trip.

Writes go through a Lua script that compares the first
:data:`~headwater.online.encoding.ORDER_BYTES` bytes of the stored and the new record byte by
byte (Lua's string ``<`` follows the server locale) and replaces only when the new one does
not sort lower. The script is called by ``EVALSHA``, pipelined 1,000 records at a time, and
loaded again when Redis answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``).

Connections (:mod:`~headwater.online.redis_node`): hiredis-packed commands on a redis-py
pool, idle connections checked before reuse, so the store recovers by itself once Redis is
back. Connection errors and timeouts (2 s) become
:class:`~headwater.errors.StoreUnavailableError` naming the URL, never its password.

``update`` (the read-modify-write of tile records, exactly once) is optimistic
(:mod:`~headwater.online.redis_update`). Here each record it writes gets its version in the
field ``<view>#v`` of the same entity hash, and the commit script's keys are the markers key
and every entity hash of the batch. (Not ``WATCH``: Redis checks each watched key against all
the others a connection watches, so watching a batch's thousands of entities costs seconds.)
A plain ``write`` that replaces a record of another definition generation deletes its
version, so an update that read the older one fails its check; within one generation the
views ``write`` serves (latest values) and the views ``update`` serves (tiles) are different
views. Upgrading from a release without versions: stop every stream consumer first (one that
writes without versions would not be seen by one that holds records by version). Each
scope's markers are one sorted set, ``hw:<project>:markers:<scope>``, scored by the applied
time in microseconds. One transaction spans keys of several hash slots, so this store needs
one server; :mod:`~headwater.online.redis_cluster` lays tile records out by view instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import redis
from redis.exceptions import NoScriptError, ResponseError

from headwater.config import redact_url
from headwater.errors import ConfigError, StoreUnavailableError
from headwater.online import check_write_batch
from headwater.online.base import MARKER_RETENTION, Modify, ViewKeys
from headwater.online.record_cache import DEFAULT_MAX_BYTES, RecordCache
from headwater.online.redis_node import UNAVAILABLE, RedisNode
from headwater.online.redis_node import pack as _pack
from headwater.online.redis_scripts import ENTITY_LAYOUT, cas_script
from headwater.online.redis_update import OptimisticUpdates, UpdateCall

VERSION_SUFFIX = b"#v"
"""A record's version is in the field of its view's name and this suffix, in the entity's
hash (a view name never holds ``#``)."""

_CAS_SCRIPT, _CAS_SHA = cas_script(drop_version=True)

_TIMEOUT_S = 2.0
_WRITE_PIPELINE = 1_000
_SCAN_COUNT = 1_000


class RedisOnlineStore(OptimisticUpdates):
    """Online records in Redis, namespaced by project; safe to share across threads."""

    _layout = ENTITY_LAYOUT

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
            pool = redis.ConnectionPool.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout)
        except ValueError as exc:
            raise ConfigError(
                f"the Redis online store URL {self._safe_url} is invalid: {exc}. Fix: set "
                "'online: url:' in headwater.yaml to redis://host:port/db") from exc
        self._node = RedisNode(pool, self._safe_url)
        self._cache = RecordCache(cache_bytes)
        self._local = threading.local()  # .pending: this thread's deferred updates

    @property
    def _idle(self) -> list[Any]:
        """The connections that served cleanly and wait for the next request."""
        return self._node.idle

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

    def _update_call(self, view: str, keys: list[bytes], modify: Modify, *,
                     scope: str | None, checked: list[str], likely_unmarked: bool
                     ) -> UpdateCall:
        field = view.encode()
        vfield = field + VERSION_SUFFIX
        return UpdateCall(
            view, keys, modify, scope, checked, likely_unmarked, field, vfield,
            [self._prefix + key + b"}" for key in keys], [field, vfield], [],
            # without a scope the markers key is a placeholder the script never touches
            self._markers_key(scope) if scope is not None else self._markers + b"-",
            self._node, f"update view '{view}' in")

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
        self._abandon(None, None)
        self._node.disconnect()

    def _round_trip(self, commands: list[bytes], action: str,
                    *, error_replies: bool = False) -> list[Any]:
        """Send packed commands in one write and read one reply each. An error reply raises
        StoreUnavailableError once all replies are read, or with ``error_replies`` comes back
        as a ResponseError value. A broken connection is dropped, never reused."""
        if error_replies:
            try:
                return self._node.round_trip(commands)
            except UNAVAILABLE as exc:
                raise self._unavailable(action, exc) from exc
        return self._trip(self._node, commands, action)

    def _unavailable(self, action: str, exc: BaseException,
                     node: RedisNode | None = None) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"cannot {action} the Redis online store at {self._safe_url}: {exc}. Fix: start "
            "Redis or make it reachable from here, or set 'online: url:' in headwater.yaml")

    def _refused(self, action: str, error: ResponseError,
                 node: RedisNode | None = None) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"Redis at {self._safe_url} refused to {action} the online store: {error}. "
            "Fix: check the server (memory limit, read-only replica, ACL) and that nothing "
            f"else writes keys under 'hw:{self.project}:'")
