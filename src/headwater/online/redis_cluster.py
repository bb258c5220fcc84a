"""The online store on Redis Cluster (``online: {type: redis, cluster: true}``).

Layout, so that what must be atomic is in one hash slot (Redis runs a script only on keys of
one slot):

- Plain (latest-value) views, written by ``write``: one hash per entity key,
  ``hw:<project>:{<entity key>}``, one field per view, as on a single server. The braces
  are the hash tag, so one entity's plain views share a slot and reading them is one
  ``HMGET`` to one node.
- Records changed by ``update`` (tile views of aggregations): per view, in the view's slot,
  ``hw:<project>:{v:<view>}:r`` (field: entity key, value: record) and
  ``hw:<project>:{v:<view>}:v`` (field: entity key, value: version), and each scope's
  markers in ``hw:<project>:{v:<view>}:m:<scope>`` (a sorted set scored by the applied time
  in microseconds). One update is one slot, so one node: the optimistic read and commit
  scripts, versions, record cache and deferred commits of :mod:`~headwater.online.redis_update`
  work as on a single server. The limit: one aggregated view lives in one slot, so on one
  node; many aggregated views spread over the nodes, one view does not.
- ``markers_present(scope, ids)`` names no view, so the store records which views a scope
  marks under: before an update's first commit under (scope, view) it adds the view to the
  set ``hw:<project>:{s:<scope>}:views`` (``SADD``, idempotent; the pairs known are cached
  in the client), and ``markers_present`` reads that set and asks each view's markers key.

``read`` asks, for each (view, entity), both the entity hash's field and the view's records
hash, and returns the record whose first :data:`~headwater.online.encoding.ORDER_BYTES` bytes
sort higher (a newer definition generation always does), so a view that changed from plain
to aggregated or back reads right. An ``update`` reads the entity hash's field too, and a
plain record there that sorts at least as high as the view's is the current one ``modify``
gets; once the update has stored its record, that plain record is deleted if unchanged.

Routing (:mod:`~headwater.online.redis_routing`): slots are computed here (CRC16 of the hash
tag, as Redis does), the slot -> node map comes from ``CLUSTER SLOTS``, and each node has its
own connection pool (:mod:`~headwater.online.redis_node`). A batch's commands are grouped per
node, sent to every node, then all replies read: one round trip per node, the nodes in
parallel. A ``MOVED`` or ``ASK`` reply (resharding, failover: the command was not run)
reloads the map and sends those commands again. A node that cannot be reached gives a
StoreUnavailableError naming it (never a password); the map is reloaded before the next
request, so the store recovers once the node, or a replica promoted in its place, answers.
"""

from __future__ import annotations

import threading
import time
from binascii import crc_hqx
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import redis
from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from headwater.config import redact_url
from headwater.errors import ConfigError, StoreUnavailableError
from headwater.online import check_write_batch
from headwater.online.base import MARKER_RETENTION, Modify, ViewKeys
from headwater.online.encoding import ORDER_BYTES
from headwater.online.record_cache import DEFAULT_MAX_BYTES, RecordCache
from headwater.online.redis_node import RedisNode, pack
from headwater.online.redis_routing import SLOTS, SlotRouting
from headwater.online.redis_scripts import VIEW_LAYOUT, cas_script
from headwater.online.redis_update import Commit, OptimisticUpdates, UpdateCall

_CAS_SCRIPT, _CAS_SHA = cas_script(drop_version=False)
# Delete a plain record an update merged into its view's records, unless it changed since.
_DROP_MERGED = b"""
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

_TIMEOUT_S = 2.0
_WRITE_PIPELINE = 1_000
_SCAN_COUNT = 1_000

def _higher(plain: bytes | None, tile: bytes | None) -> bytes | None:
    """Of an entity's plain record and tile record of a view, the one that sorts higher (the
    tile record on a tie), None when neither is stored."""
    if plain is None or (tile is not None and tile[:ORDER_BYTES] >= plain[:ORDER_BYTES]):
        return tile
    return plain


class RedisClusterOnlineStore(SlotRouting, OptimisticUpdates):
    """Online records in a Redis Cluster, namespaced by project; safe to share across
    threads. ``url`` is any node of the cluster (the seed)."""

    _layout = VIEW_LAYOUT

    def __init__(self, url: str, project: str, *, timeout: float = _TIMEOUT_S,
                 marker_retention: timedelta = MARKER_RETENTION,
                 cache_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.url = url
        self.project = project
        self._safe_url = redact_url(url)
        base = b"hw:" + project.encode() + b":"
        self._prefix = base + b"{"
        self._braced_project = b"{" in base or b"}" in base
        self._base = base
        self._retention_us = marker_retention // timedelta(microseconds=1)
        try:
            seed = redis.ConnectionPool.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout)
        except ValueError as exc:
            raise ConfigError(
                f"the Redis Cluster online store URL {self._safe_url} is invalid: {exc}. Fix: "
                "set 'online: url:' in headwater.yaml to redis://host:port of any node") from exc
        kwargs = dict(seed.connection_kwargs)
        if "host" not in kwargs:
            raise ConfigError(
                f"the Redis Cluster online store URL {self._safe_url} names no host and port. "
                "Fix: set 'online: url:' in headwater.yaml to redis://host:port of any node")
        kwargs["db"] = 0  # a cluster has database 0 only
        self._connection_class = seed.connection_class
        self._kwargs = kwargs
        self._seed = (str(kwargs["host"]), int(kwargs.get("port") or 6379))
        self._nodes: dict[tuple[str, int], RedisNode] = {}
        self._slots: list[RedisNode | None] = []
        self._stale = True
        self._map_lock = threading.Lock()
        self._registered: set[tuple[str, str]] = set()  # (scope, view) pairs in the set
        self._cache = RecordCache(cache_bytes)
        self._local = threading.local()  # .pending: this thread's deferred updates

    # -- keys ----------------------------------------------------------------------------

    def _entity(self, key: bytes) -> bytes:
        return self._prefix + key + b"}"

    def _entity_slot(self, key: bytes) -> int:
        """The slot of an entity's hash: CRC16 of its hash tag, the key up to its first
        ``}`` (as ``key_slot`` of the full name, without building the name)."""
        if self._braced_project:
            return int(key_slot(self._entity(key)))
        end = key.find(b"}")
        if end == 0:  # an empty tag: the whole name is hashed
            return int(key_slot(self._entity(key)))
        return crc_hqx(key if end < 0 else key[:end], 0) % SLOTS

    def _view_key(self, view: str, suffix: bytes) -> bytes:
        return self._prefix + b"v:" + view.encode() + b"}:" + suffix

    def _scope_views(self, scope: str) -> bytes:
        return self._prefix + b"s:" + scope.encode() + b"}:views"

    # -- the OnlineStore protocol ---------------------------------------------------------

    def write(self, view: str, keys: Sequence[bytes], records: Sequence[bytes]) -> int:
        """Compare-and-set each record in its entity's hash; returns how many were stored."""
        check_write_batch(view, keys, records)
        field = view.encode()
        action = f"write view '{view}' to"
        stored = 0
        for start in range(0, len(keys), _WRITE_PIPELINE):
            items = []
            for key, record in zip(keys[start:start + _WRITE_PIPELINE],
                                   records[start:start + _WRITE_PIPELINE], strict=True):
                items.append((self._entity_slot(key), pack(
                    (b"EVALSHA", _CAS_SHA, 1, self._prefix + key + b"}", field, record))))
            replies = self._many(items, action, error_replies=True)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                for node in self._masters():
                    self._trip(node, [pack((b"SCRIPT", b"LOAD", _CAS_SCRIPT))],
                               "load the write script into")
                retried = self._many([items[i] for i in missing], action)
                for i, reply in zip(missing, retried, strict=True):
                    replies[i] = reply
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise self._refused(action, reply)
                stored += reply
        return stored

    def read(self, requests: Sequence[ViewKeys]) -> list[list[bytes | None]]:
        """For each request, the stored record of each key (None if none), in order: one
        ``HMGET`` per distinct entity (its plain views) and one per view (its records
        hash), grouped per node, all nodes at once; of the two records of a (view, entity)
        the one that sorts higher."""
        if len(requests) == 1:  # one view: no grouping of fields per entity
            (request,) = requests
            if not request.keys:
                return [[]]
            field, prefix, slot_of = request.view.encode(), self._prefix, self._entity_slot
            items = [(slot_of(key), pack((b"HMGET", prefix + key + b"}", field)))
                     for key in request.keys]
            records = self._view_key(request.view, b"r")
            items.append((key_slot(records), pack((b"HMGET", records, *request.keys))))
            replies = self._many(items, "read")
            return [[_higher(plain[0], tile) for plain, tile in zip(
                replies[:-1], replies[-1], strict=True)]]
        fields_of: dict[bytes, dict[bytes, int]] = {}
        keys_of: dict[str, dict[bytes, int]] = {}
        for request in requests:
            field = request.view.encode()
            keyed = keys_of.setdefault(request.view, {})
            for key in request.keys:
                fields = fields_of.get(key)
                if fields is None:
                    fields_of[key] = {field: 0}
                elif field not in fields:
                    fields[field] = len(fields)
                if key not in keyed:
                    keyed[key] = len(keyed)
        items = []
        for key, fields in fields_of.items():
            items.append((self._entity_slot(key),
                          pack((b"HMGET", self._prefix + key + b"}", *fields))))
        views = [view for view, keyed in keys_of.items() if keyed]
        for view in views:
            name = self._view_key(view, b"r")
            items.append((key_slot(name), pack((b"HMGET", name, *keys_of[view]))))
        replies = self._many(items, "read")
        plain = dict(zip(fields_of, replies, strict=False))
        merged = dict(zip(views, replies[len(fields_of):], strict=True))
        out: list[list[bytes | None]] = []
        for request in requests:
            field = request.view.encode()
            tiles = merged.get(request.view)
            keyed = keys_of[request.view]
            row: list[bytes | None] = []
            for key in request.keys:
                row.append(_higher(plain[key][fields_of[key][field]],
                                   tiles[keyed[key]] if tiles is not None else None))
            out.append(row)
        return out

    def markers_present(self, scope: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are marked under ``scope`` within the retention: the views the
        scope marks under (``SMEMBERS``), then one ``ZMSCORE`` per view."""
        checked = list(dict.fromkeys(ids))
        if not checked:
            return set()
        action = "read markers from"
        name = self._scope_views(scope)
        (views,) = self._many([(key_slot(name), pack((b"SMEMBERS", name)))], action)
        items = []
        for view in sorted(views):
            marks = self._view_key(view.decode(), b"m:" + scope.encode())
            items.append((key_slot(marks), pack((b"ZMSCORE", marks, *checked))))
        oldest = time.time_ns() // 1_000 - self._retention_us
        return {marker for scores in self._many(items, action)
                for marker, score in zip(checked, scores, strict=True)
                if score is not None and float(score) > oldest}

    def delete_view(self, view: str) -> int:
        """Remove ``view``'s field from every entity hash on every master (``SCAN``, then
        ``HDEL``) and its records and versions hashes; returns how many records went."""
        field = view.encode()
        self._cache.forget(field)
        action = f"delete view '{view}' from"
        records, versions = self._view_key(view, b"r"), self._view_key(view, b"v")
        (count,) = self._many([(key_slot(records), pack((b"HLEN", records)))], action)
        self._many([(key_slot(records), pack((b"DEL", records, versions)))], action)
        removed = int(count)
        skip = (self._prefix + b"v:", self._prefix + b"s:")
        pattern = self._prefix + b"*"
        for node in self._masters():
            cursor: bytes | int = 0
            while True:
                (reply,) = self._trip(node, [pack((b"SCAN", cursor, b"MATCH", pattern,
                                                   b"COUNT", _SCAN_COUNT, b"TYPE", b"hash"))],
                                      action)
                cursor, keys = reply
                items = [(key_slot(key), pack((b"HDEL", key, field)))
                         for key in keys if not key.startswith(skip)]
                removed += sum(1 for reply in self._many(items, action) if reply)
                if int(cursor) == 0:
                    break
        return removed

    def ping(self) -> None:
        """Raise StoreUnavailableError unless every master answers."""
        for node in self._masters():
            self._trip(node, [pack((b"PING",))], "reach")

    def close(self) -> None:
        """Close every node's pooled connections (a later call would open new ones); this
        thread's unsettled deferred updates are dropped (their outcome is unknown)."""
        self._abandon(None, None)
        for node in list(self._nodes.values()):
            node.disconnect()

    # -- update: one view's slot -----------------------------------------------------------

    def _update_call(self, view: str, keys: list[bytes], modify: Modify, *,
                     scope: str | None, checked: list[str], likely_unmarked: bool
                     ) -> UpdateCall:
        field = view.encode()
        records, versions = self._view_key(view, b"r"), self._view_key(view, b"v")
        # without a scope the markers key is a placeholder the script never touches
        marks = self._view_key(view, b"m-" if scope is None else b"m:" + scope.encode())
        return UpdateCall(
            view, keys, modify, scope, checked, likely_unmarked, field, field,
            [records, versions], keys, keys, marks, self._owner(key_slot(records)),
            f"update view '{view}' in")

    def _update_trip(self, update: UpdateCall, commands: list[bytes]) -> list[Any]:
        slot = key_slot(update.marks_key)
        return self._many([(slot, command) for command in commands], update.action)

    def _update_node(self, update: UpdateCall) -> RedisNode:
        return self._owner(key_slot(update.marks_key))

    def _redirected(self) -> None:
        self._stale = True

    def _read_plain(self, update: UpdateCall, commands: list[bytes]
                    ) -> tuple[list[Any], list[bytes | None] | None]:
        slot = key_slot(update.marks_key)
        items = [(slot, command) for command in commands]
        items += [(self._entity_slot(key), pack((b"HGET", self._entity(key), update.field)))
                  for key in update.keys]
        replies = self._many(items, update.action)
        return replies[:len(commands)], replies[len(commands):]

    def _before_commit(self, update: UpdateCall) -> None:
        if update.scope is None or (update.scope, update.view) in self._registered:
            return
        name = self._scope_views(update.scope)
        self._many([(key_slot(name), pack((b"SADD", name, update.field)))], update.action)
        self._registered.add((update.scope, update.view))

    def _after_commit(self, commit: Commit) -> None:
        update, read = commit.update, commit.read
        items = []
        for key, stored, current, record in zip(update.keys, read.stored, read.current,
                                                 commit.new, strict=True):
            if record and current is not None and current is not stored:
                name = self._entity(key)
                items.append((self._entity_slot(key), pack((b"EVAL", _DROP_MERGED, 1, name,
                                                    update.field, current))))
        self._many(items, update.action)

    def _unavailable(self, action: str, exc: BaseException,
                     node: RedisNode | None = None) -> StoreUnavailableError:
        where = f"node {node.name} of " if node is not None else ""
        return StoreUnavailableError(
            f"cannot {action} the Redis Cluster online store: {where}the cluster at "
            f"{self._safe_url} cannot be reached: {exc}. Fix: start that node or make it "
            "reachable from here ('redis-cli -c -h <host> -p <port> cluster info' must say "
            "cluster_state:ok), or set 'online: url:' in headwater.yaml")

    def _refused(self, action: str, error: ResponseError,
                 node: RedisNode | None = None) -> StoreUnavailableError:
        where = f"node {node.name} of " if node is not None else ""
        return StoreUnavailableError(
            f"Redis Cluster {where}{self._safe_url} refused to {action} the online store: "
            f"{error}. Fix: check the cluster (cluster_state:ok, memory limit, ACL) and that "
            f"nothing else writes keys under 'hw:{self.project}:'")
