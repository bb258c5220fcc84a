"""Connections to one Redis server, shared by the single-server and the cluster online stores.

Commands are packed with hiredis and sent on connections of a redis-py pool; that pool
replaces connections that a restarted server closed, so a store recovers by itself once the
server is back. A connection that served a request cleanly goes back on the node's own idle
stack rather than through the pool's bookkeeping (about 7 us a request): before reuse it gets
the pool's own check (``can_read``: bytes pending, or closed by the server), and one that
fails the check, or fails a request, is disconnected and handed back to the pool.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, cast

import hiredis
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""The errors that mean a server cannot be reached (a request's outcome is unknown)."""

# hiredis's stub types the argument as a 1-tuple; it packs any tuple of bytes, str and numbers.
pack = cast("Callable[[tuple[Any, ...]], bytes]", hiredis.pack_command)


class _Heads(dict[int, bytes]):
    """What goes before an argument of each length (the end of the argument before it and
    the length), made once per length below :data:`_HEAD_LENGTHS`."""

    def __missing__(self, length: int) -> bytes:
        head = b"\r\n$%d\r\n" % length
        if length < _HEAD_LENGTHS:
            self[length] = head
        return head


_HEAD_LENGTHS = 1 << 16
_heads = _Heads()


def pack_bytes(args: list[bytes]) -> bytes:
    """The command of ``args`` (bytes only, at least one) as :data:`pack` gives it, in
    half its time for a command of thousands of arguments and megabytes (an update's
    commit): each argument is copied once, with no call per argument."""
    heads = list(map(_heads.__getitem__, map(len, args)))
    heads[0] = b"*%d\r\n$%d\r\n" % (len(args), len(args[0]))
    out = [b""] * (2 * len(args) + 1)
    out[0:-1:2] = heads
    out[1::2] = args
    out[-1] = b"\r\n"
    return b"".join(out)


class RedisNode:
    """One server's connection pool and idle connections; safe to share across threads
    (``list.pop`` and ``list.append`` are atomic, so the idle stack needs no lock)."""

    def __init__(self, pool: redis.ConnectionPool, name: str) -> None:
        self.pool = pool
        self.name = name  # host:port, never a password
        self.idle: list[Any] = []
        self._pid = os.getpid()

    def connection(self) -> Any:
        """An idle connection that passes the pool's readiness check, else one from the
        pool (which connects it). Raises one of :data:`UNAVAILABLE`."""
        idle = self.idle
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
            except UNAVAILABLE:
                pass
            self.drop(conn)  # closed by the server, or holding unread bytes
        return self.pool.get_connection()

    def drop(self, conn: Any) -> None:
        """Disconnect a connection whose state is unknown and hand it back to the pool."""
        conn.disconnect()
        self.pool.release(conn)

    def send(self, commands: list[bytes]) -> Any:
        """Send packed commands in one write on a connection and return it (its replies
        are read by :meth:`receive`). Raises one of :data:`UNAVAILABLE`."""
        conn = self.connection()
        try:
            conn.send_packed_command(
                commands if len(commands) == 1 else [b"".join(commands)], check_health=False)
        except BaseException:
            self.drop(conn)
            raise
        return conn

    def receive(self, conn: Any, count: int) -> list[Any]:
        """Read ``count`` replies from ``conn``; an error reply comes back as a
        ResponseError value. The connection goes back on the idle stack when all were read,
        else it is dropped and one of :data:`UNAVAILABLE` raised."""
        replies: list[Any] = []
        append = replies.append
        read_response = conn.read_response
        try:
            for _ in range(count):
                try:
                    append(read_response())
                except ResponseError as exc:
                    append(exc)
        except BaseException:
            self.drop(conn)
            raise
        self.idle.append(conn)
        return replies

    def round_trip(self, commands: list[bytes]) -> list[Any]:
        """:meth:`send` then :meth:`receive`: one reply per command."""
        if not commands:
            return []
        return self.receive(self.send(commands), len(commands))

    def disconnect(self) -> None:
        """Close every connection (a later request opens new ones)."""
        self.idle.clear()
        self.pool.disconnect()  # also those that were idle: the pool counts them in use
