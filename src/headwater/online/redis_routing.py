"""Routing for the Redis Cluster online store: the slot -> node map and batches sent to
many nodes at once.

Slots are computed here (CRC16 of the hash tag, as Redis does: ``redis.crc.key_slot``), the
map comes from ``CLUSTER SLOTS`` of any node that answers (the seed first), and each node
has its own connection pool (:class:`~headwater.online.redis_node.RedisNode`). A batch's
commands are grouped per node, sent to every node, then all replies read: one round trip per
node, the nodes in parallel. ``MOVED`` and ``ASK`` replies (the command did not run) mark the
map stale and send those commands again (after ``ASKING`` for ``ASK``). ``TRYAGAIN`` (a
multi-key command, such as an update's script, on a slot in migration whose keys are split
between the two nodes) is sent again after a growing pause, for up to 10 s: one view's
updates wait while its slot migrates. A node that cannot be reached marks the map stale too,
so the next request learns a failover.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from redis.exceptions import AskError, MovedError, ResponseError, TryAgainError

from headwater.errors import StoreUnavailableError
from headwater.online.redis_node import UNAVAILABLE, RedisNode, pack

SLOTS = 16_384
_REDIRECTS = 16
_TRYAGAIN_S = 10.0

Item = tuple[int, bytes]
"""A command to send: its key's slot and the packed command."""


class SlotRouting:
    """The routing half of :class:`~headwater.online.redis_cluster.RedisClusterOnlineStore`
    (a mixin: the store sets the attributes below and builds the errors)."""

    _safe_url: str
    _connection_class: type[Any]
    _kwargs: dict[str, Any]
    _seed: tuple[str, int]
    _nodes: dict[tuple[str, int], RedisNode]
    _slots: list[RedisNode | None]
    _stale: bool
    _map_lock: threading.Lock

    def _unavailable(self, action: str, exc: BaseException,
                     node: RedisNode | None = None) -> StoreUnavailableError:
        raise NotImplementedError

    def _refused(self, action: str, error: ResponseError,
                 node: RedisNode | None = None) -> StoreUnavailableError:
        raise NotImplementedError


    def _node(self, host: str, port: int) -> RedisNode:
        node = self._nodes.get((host, port))
        if node is None:
            pool = redis.ConnectionPool(connection_class=self._connection_class,
                                        **{**self._kwargs, "host": host, "port": port})
            node = self._nodes.setdefault((host, port), RedisNode(pool, f"{host}:{port}"))
        return node

    def _slot_map(self) -> list[RedisNode | None]:
        """The slot -> master map, loaded again (``CLUSTER SLOTS``) when marked stale."""
        if not self._stale and self._slots:
            return self._slots
        with self._map_lock:
            if not self._stale and self._slots:
                return self._slots
            candidates = [self._node(*self._seed), *self._nodes.values()]
            errors = []
            for node in dict.fromkeys(candidates):
                try:
                    (reply,) = node.round_trip([pack((b"CLUSTER", b"SLOTS"))])
                except UNAVAILABLE as exc:
                    errors.append(f"{node.name}: {exc}")
                    continue
                if isinstance(reply, ResponseError):
                    errors.append(f"{node.name}: {reply}")
                    continue
                slots: list[RedisNode | None] = [None] * SLOTS
                for start, end, master, *_ in reply:
                    host = master[0].decode() if master[0] else node.name.rsplit(":", 1)[0]
                    owner = self._node(host, int(master[1]))
                    slots[int(start):int(end) + 1] = [owner] * (int(end) - int(start) + 1)
                self._slots = slots
                self._stale = False
                return slots
            raise StoreUnavailableError(
                f"cannot load the slot map of the Redis Cluster online store at "
                f"{self._safe_url}: no node answered CLUSTER SLOTS ({'; '.join(errors)}). "
                "Fix: start the cluster's nodes or make them reachable from here, or set "
                "'online: url:' in headwater.yaml to a node of the cluster")

    def _owner(self, slot: int) -> RedisNode:
        node = self._slot_map()[slot]
        if node is None:
            raise StoreUnavailableError(
                f"slot {slot} of the Redis Cluster at {self._safe_url} has no node. Fix: "
                "assign every slot (redis-cli --cluster fix <host:port>) and check "
                "'redis-cli -c -h <host> -p <port> cluster info' says cluster_state:ok")
        return node

    def _masters(self) -> list[RedisNode]:
        return list(dict.fromkeys(node for node in self._slot_map() if node is not None))

    def _many(self, items: list[Item], action: str,
              *, error_replies: bool = False) -> list[Any]:
        """Send each command to the node of its slot (per node one write, all nodes before
        any reply is read) and return the replies in order. ``MOVED``/``ASK`` replies are
        followed; other error replies raise StoreUnavailableError, or with
        ``error_replies`` come back as ResponseError values."""
        replies: list[Any] = [None] * len(items)
        todo = list(range(len(items)))
        asking: dict[int, RedisNode] = {}
        redirects, waited = 0, 0.0
        while todo and redirects <= _REDIRECTS and waited < _TRYAGAIN_S:
            groups: dict[RedisNode, list[int]] = {}
            slots = self._slot_map()
            for i in todo:
                node = (asking.get(i) if asking else None) or slots[items[i][0]]
                if node is None:
                    node = self._owner(items[i][0])  # raises: a slot without a node
                indexes = groups.get(node)
                if indexes is None:
                    groups[node] = [i]
                else:
                    indexes.append(i)
            sent: list[tuple[RedisNode, list[int], Any, int]] = []
            failed: tuple[RedisNode, BaseException] | None = None
            for node, indexes in groups.items():
                if asking:
                    commands = []
                    for i in indexes:
                        if i in asking:
                            commands.append(pack((b"ASKING",)))
                        commands.append(items[i][1])
                else:
                    commands = [items[i][1] for i in indexes]
                try:
                    sent.append((node, indexes, node.send(commands), len(commands)))
                except UNAVAILABLE as exc:
                    failed = failed or (node, exc)
            todo, retry_ask, tried_again = [], {}, []
            for node, indexes, conn, count in sent:
                if failed is not None:
                    node.drop(conn)  # its replies are not read: never reuse it
                    continue
                try:
                    got = node.receive(conn, count)
                except UNAVAILABLE as exc:
                    failed = (node, exc)
                    continue
                if asking:  # drop the replies to ASKING
                    kept, position = [], 0
                    for i in indexes:
                        position += i in asking
                        kept.append(got[position])
                        position += 1
                    got = kept
                for i, reply in zip(indexes, got, strict=True):
                    if not isinstance(reply, ResponseError):
                        replies[i] = reply
                    elif isinstance(reply, AskError):  # MOVED is an AskError too
                        todo.append(i)
                        if isinstance(reply, MovedError):
                            self._stale = True
                        else:
                            retry_ask[i] = self._node(str(reply.host), int(reply.port))
                    elif isinstance(reply, TryAgainError):
                        tried_again.append(i)
                    else:
                        replies[i] = reply
            if failed is not None:
                self._stale = True
                raise self._unavailable(action, failed[1], failed[0])
            asking = retry_ask
            redirects += bool(todo)
            if tried_again:  # keys of a slot in migration: wait for it, then ask again
                todo += tried_again
                pause = min(0.005 * 2 ** int(waited / 0.05), 0.1)
                time.sleep(pause)
                waited += pause
                self._stale = True
        if todo:
            raise StoreUnavailableError(
                f"cannot {action} the Redis Cluster online store at {self._safe_url}: its "
                f"slots were moving ({redirects} redirections, {waited:.1f} s of TRYAGAIN). "
                "Fix: retry once the resharding or failover is over")
        if not error_replies:
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise self._refused(action, reply)
        return replies

