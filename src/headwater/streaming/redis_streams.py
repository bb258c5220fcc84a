"""Redis Streams: one consumer of a consumer group reading a set of stream keys.

Each topic is a stream key; the group is created at the start of the stream
(``XGROUP CREATE ... 0 MKSTREAM``: a new group reads the whole stream) if it does not exist.
:meth:`RedisStreamReader.read` serves, in turn:

1. after a (re)start, this consumer's own pending entries (``XREADGROUP ... 0``), those it
   read but never acknowledged before it stopped, until there are none left;
2. every ``claim_timeout / 2`` seconds, entries of other consumers idle longer than the
   claim timeout (``XAUTOCLAIM``): their consumer died;
3. new entries (``XREADGROUP ... >`` with ``COUNT`` and ``BLOCK``).

An entry is acknowledged (``XACK``) only after its effect is committed. A pending entry
whose data was deleted from the stream (trimmed) is acknowledged and skipped. Dead letters
go to the stream ``<topic>.dead`` with fields ``id``, ``reason`` and the original payload.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import groupby, repeat
from operator import attrgetter, eq, itemgetter
from typing import Any, cast

import hiredis
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headwater.config import redact_url
from headwater.errors import ConfigError, StoreUnavailableError
from headwater.streaming.messages import DATA_FIELD, Message
from headwater.streaming.reader import DEAD_SUFFIX

_ID = attrgetter("id")
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_SOCKET_TIMEOUT_S = 10.0
# hiredis's stub types the argument as a 1-tuple; it packs any tuple of bytes, str and numbers.
_pack = cast("Callable[[tuple[Any, ...]], bytes]", hiredis.pack_command)


class RedisStreamReader:
    """Reads ``topics`` as ``consumer`` of ``group`` (see the module docstring)."""

    @property
    def reads_ahead(self) -> bool:
        """Whether the next read may run on another thread before the messages read so far
        are acknowledged: once this consumer's own pending entries are done (read from the
        start of its pending list, they would come again until acknowledged). Each command
        takes its own connection from the client's pool; the consumer runtime never runs
        two reads at a time."""
        return not self._own_pending

    def __init__(self, url: str, topics: Sequence[str], *, group: str, consumer: str,
                 claim_timeout_s: float) -> None:
        self._safe_url = redact_url(url)
        self.topics = list(topics)
        self.group = group
        self.consumer = consumer
        self._claim_ms = max(1, int(claim_timeout_s * 1000))
        self._next_claim = 0.0
        self._claim_from = dict.fromkeys(self.topics, "0-0")
        self._own_pending = True
        try:
            self._client = redis.Redis.from_url(url, socket_timeout=_SOCKET_TIMEOUT_S,
                                                socket_connect_timeout=_SOCKET_TIMEOUT_S)
        except ValueError as exc:
            raise ConfigError(f"stream.url {self._safe_url} is invalid: {exc}. Fix: set "
                              "'stream: url:' in headwater.yaml to redis://host:port/db") from exc
        # The replies of XREADGROUP as the wire gives them (lists of entry ids and flat
        # field lists), not a dict per entry: messages are built from them directly.
        self._client.set_response_callback("XREADGROUP", _raw)
        for topic in self.topics:
            self._call("create the consumer group on", self._create_group, topic)

    def _create_group(self, topic: str) -> None:
        try:
            self._client.xgroup_create(topic, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, count: int, wait_ms: int) -> list[Message]:
        """The next batch (see the module docstring)."""
        if self._own_pending:
            found = self._read_group(dict.fromkeys(self.topics, "0"), count, None)
            if found:
                return found
            self._own_pending = False
        if time.monotonic() >= self._next_claim:
            claimed = self._claim(count)
            if claimed:
                return claimed
            self._next_claim = time.monotonic() + self._claim_ms / 2000
        block = max(1, min(wait_ms, int((self._next_claim - time.monotonic()) * 1000) + 1))
        return self._read_group(dict.fromkeys(self.topics, ">"), count, block, fresh=True)

    def _read_group(self, streams: dict[str, str], count: int, block: int | None, *,
                    fresh: bool = False) -> list[Message]:
        reply = self._call("read", self._client.xreadgroup, self.group, self.consumer,
                           streams, count=count, block=block)
        messages: list[Message] = []
        gone: dict[str, list[bytes]] = {}
        for name, entries in (reply.items() if isinstance(reply, dict) else reply or ()):
            topic = name.decode() if isinstance(name, bytes) else str(name)
            found = list(map(_SECOND, entries))
            if (None not in found and set(map(len, found)) == {2}
                    and all(map(eq, repeat(DATA_FIELD), map(_FIRST, found)))):
                # the usual: every entry holds data only
                messages += map(tuple.__new__, repeat(Message), zip(  # no call per message
                    repeat(topic), map(bytes.decode, map(_FIRST, entries)),
                    map(_SECOND, found), repeat(None), repeat(None), repeat(fresh)))
                continue
            for entry_id, fields in entries:
                if not fields:  # the entry was trimmed from the stream after delivery
                    gone.setdefault(topic, []).append(entry_id)
                else:
                    messages.append(_message(topic, entry_id, _pairs(fields))._replace(
                        fresh=fresh))
        for topic, ids in gone.items():
            self._call("acknowledge", self._client.xack, topic, self.group, *ids)
        return messages

    def _claim(self, count: int) -> list[Message]:
        messages: list[Message] = []
        for topic in self.topics:
            reply: Any = self._call("claim idle entries on", self._client.xautoclaim, topic,
                                    self.group, self.consumer, self._claim_ms,
                                    self._claim_from[topic], count=count - len(messages))
            next_start, entries = reply[0], reply[1]
            self._claim_from[topic] = (next_start.decode() if isinstance(next_start, bytes)
                                       else str(next_start))
            messages += [_message(topic, entry_id, fields) for entry_id, fields in entries
                         if fields]
            if len(messages) >= count:
                break
        return messages

    def ack(self, messages: Sequence[Message]) -> None:
        """``XACK`` the messages, one command per topic, in one round trip (packed by
        hiredis: a batch's thousands of ids cost redis-py's packer tens of milliseconds)."""
        by_topic: dict[str, list[str]] = {}
        for topic, run in groupby(messages, attrgetter("topic")):
            by_topic.setdefault(topic, []).extend(map(_ID, run))
        if not by_topic:
            return
        commands = [_pack((b"XACK", topic, self.group, *ids)) for topic, ids in by_topic.items()]
        self._call("acknowledge", self._send_packed, commands)

    def _send_packed(self, commands: list[bytes]) -> list[Any]:
        """Send packed commands on one pooled connection and read a reply each."""
        pool = self._client.connection_pool
        conn: Any = pool.get_connection()
        try:
            conn.send_packed_command([b"".join(commands)])
            replies = [conn.read_response() for _ in commands]
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return replies

    def dead_letter(self, refused: Sequence[tuple[Message, str]]) -> None:
        """``XADD <topic>.dead`` with the id, the reason and the original fields."""
        if not refused:
            return
        pipe = self._client.pipeline(transaction=False)
        for message, reason in refused:
            fields: dict[Any, Any] = {b"id": message.id, b"reason": reason}
            if message.data is not None:
                fields[DATA_FIELD] = message.data
            else:
                fields.update({k: v for k, v in (message.fields or {}).items()
                               if k not in (b"id", b"reason")})
            pipe.xadd(message.topic + DEAD_SUFFIX, fields)
        self._call("write dead letters to", pipe.execute)

    def close(self) -> None:
        self._client.close()

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(
                f"cannot {what} Redis Streams at {self._safe_url}: {exc}. Fix: check that "
                "Redis is running and 'stream: url:' in headwater.yaml") from exc
        except ResponseError as exc:
            raise StoreUnavailableError(
                f"Redis Streams at {self._safe_url} refused to {what} it: {exc}. Fix: check "
                "that the topic is a stream key (not another type) and Redis is 5.0 or "
                "later (6.2 for XAUTOCLAIM)") from exc


def _raw(response: Any, **options: Any) -> Any:
    return response


def _pairs(fields: Any) -> dict[bytes, bytes]:
    """An entry's fields as a dict, from the flat list ``[name, value, ...]`` of the wire
    (or a dict already)."""
    if isinstance(fields, dict):
        return fields
    return dict(zip(fields[::2], fields[1::2], strict=True))


def _message(topic: str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Message:
    ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    data = fields.get(DATA_FIELD)
    if data is not None:
        return Message(topic, ident, data=data)
    return Message(topic, ident, fields=fields)
