"""NATS JetStream: one consumer process of a durable pull consumer shared by the group.

Each topic is a subject. The JetStream stream holding it is found by subject, or created
(``HW_<topic>``, file storage) when none does; so is one for the dead letters
(``<topic>.dead``). Every consumer process of the group binds to the same durable pull
consumer, named ``<group>_<topic>``, with explicit acks and ``ack_wait`` = the claim timeout,
so JetStream hands each message to one process at a time and redelivers what a dead process
never acknowledged once ``ack_wait`` has passed. A new durable consumer starts at the
beginning of the stream. The event id of a message is its stream sequence number.

nats-py is asynchronous; the reader drives its own event loop, so callers stay synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.js import api

from headwater.config import redact_url
from headwater.errors import StoreUnavailableError
from headwater.streaming.messages import Message
from headwater.streaming.reader import DEAD_SUFFIX

_T = TypeVar("_T")
_CONNECT_TIMEOUT_S = 5.0
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")


def stream_name(subject: str) -> str:
    """The name of the JetStream stream created for ``subject``: ``HW_<subject>`` with
    characters a stream name cannot hold replaced by ``_``."""
    return "HW_" + _NOT_NAME.sub("_", subject)


class NatsStreamReader:
    """Reads ``topics`` as one process of the durable consumer ``group`` (module
    docstring); ``consumer`` names this process in messages only."""

    def __init__(self, url: str, topics: Sequence[str], *, group: str, consumer: str,
                 claim_timeout_s: float) -> None:
        self._safe_url = redact_url(url)
        self.topics = list(topics)
        self.group = group
        self.consumer = consumer
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None
        try:
            self._subs = self._run("connect to", self._connect(url, claim_timeout_s))
        except BaseException:
            self.close()
            raise

    async def _connect(self, url: str, ack_wait: float) -> list[Any]:
        self._nc = await nats.connect(url, connect_timeout=_CONNECT_TIMEOUT_S,
                                      max_reconnect_attempts=3, allow_reconnect=True)
        js = self._nc.jetstream()
        subs = []
        self._epochs: list[object] = []
        for topic in self.topics:
            stream = await _ensure_stream(js, topic)
            # a stream deleted and created again counts from 1: the creation time keeps
            # its ids apart from the old stream's, which are still marked as applied
            self._epochs.append((await js.stream_info(stream)).created)
            await _ensure_stream(js, topic + DEAD_SUFFIX)
            config = api.ConsumerConfig(
                durable_name=durable_name(self.group, topic), filter_subject=topic,
                ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ack_wait,
                deliver_policy=api.DeliverPolicy.ALL, max_ack_pending=-1)
            subs.append(await js.pull_subscribe(topic, durable=config.durable_name,
                                                stream=stream, config=config))
        return subs

    def read(self, count: int, wait_ms: int) -> list[Message]:
        """Up to ``count`` messages; JetStream redelivers unacknowledged ones by itself."""
        return self._run("read from", self._read(count, wait_ms / 1000))

    async def _read(self, count: int, wait: float) -> list[Message]:
        messages: list[Message] = []
        each = max(0.001, wait / len(self._subs))
        for topic, sub, epoch in zip(self.topics, self._subs, self._epochs, strict=True):
            try:
                fetched = await sub.fetch(batch=count - len(messages), timeout=each)
            except (nats.errors.TimeoutError, TimeoutError):  # no message in time
                continue
            messages += [Message(topic, message_id(epoch, m.metadata.sequence.stream),
                                 data=m.data, handle=m,
                                 fresh=m.metadata.num_delivered == 1) for m in fetched]
            if len(messages) >= count:
                break
        return messages

    def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge each message and flush, so the acks have reached the server."""
        self._run("acknowledge on", self._ack(messages))

    async def _ack(self, messages: Sequence[Message]) -> None:
        for message in messages:
            await message.handle.ack()
        await self._nc.flush()

    def dead_letter(self, refused: Sequence[tuple[Message, str]]) -> None:
        """Publish each message's data to ``<topic>.dead`` with headers ``Hw-Id`` and
        ``Hw-Reason``, and wait for JetStream to store it."""
        self._run("write dead letters to", self._dead_letter(refused))

    async def _dead_letter(self, refused: Sequence[tuple[Message, str]]) -> None:
        js = self._nc.jetstream()
        for message, reason in refused:
            await js.publish(message.topic + DEAD_SUFFIX, message.data or b"",
                             headers={"Hw-Id": message.id, "Hw-Reason": reason})

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._nc is not None and not self._nc.is_closed:
            # closing a connection that already failed: nothing is left to release
            with contextlib.suppress(OSError, nats.errors.Error):
                self._loop.run_until_complete(self._nc.close())
        self._loop.close()

    def _run(self, what: str, coroutine: Coroutine[Any, Any, _T]) -> _T:
        try:
            return self._loop.run_until_complete(coroutine)
        except (OSError, nats.errors.Error, TimeoutError) as exc:
            raise StoreUnavailableError(
                f"cannot {what} NATS JetStream at {self._safe_url}: "
                f"{type(exc).__name__} {exc}. Fix: check that nats-server runs with "
                "JetStream (-js) and 'stream: url:' in headwater.yaml") from exc


def durable_name(group: str, topic: str) -> str:
    """The durable consumer of ``group`` on ``topic``."""
    return f"{group}_{_NOT_NAME.sub('_', topic)}"


def message_id(created: object, sequence: int) -> str:
    """An event's id: its stream's creation time and its sequence in the stream (a stream
    created again numbers from 1 and must not look like the old one)."""
    return f"{created}/{sequence}"


async def _ensure_stream(js: Any, subject: str) -> str:
    """The stream holding ``subject``, created when there is none."""
    try:
        name: str = await js.find_stream_name_by_subject(subject)
        return name
    except nats.js.errors.NotFoundError:
        name = stream_name(subject)
        await js.add_stream(name=name, subjects=[subject])
        return name
