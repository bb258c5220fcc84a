"""The stream reader protocol: what the consumer runtime needs from a stream.

Implementations: :mod:`~headwater.streaming.redis_streams` (Redis Streams consumer groups)
and :mod:`~headwater.streaming.nats` (NATS JetStream durable pull consumers). Both deliver
at least once: a message comes back until it is acknowledged, to this consumer after a
restart or to another one of the group after the claim timeout. The consumer makes the
effect exactly-once by event id (:mod:`~headwater.streaming.consumer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from headwater.streaming.messages import Message

DEAD_SUFFIX = ".dead"
"""The dead-letter stream or subject of a topic is ``<topic>.dead``."""


class StreamReader(Protocol):
    """Reads batches of messages from a set of topics as one consumer of a group."""

    def read(self, count: int, wait_ms: int) -> list[Message]:
        """Up to ``count`` messages, waiting up to ``wait_ms`` when none is ready: first
        this consumer's own unacknowledged messages (after a restart), then messages left
        by dead consumers past the claim timeout, then new ones."""
        ...

    def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge ``messages``: they are never delivered again."""
        ...

    def dead_letter(self, refused: Sequence[tuple[Message, str]]) -> None:
        """Publish each refused message, with its id and reason, to ``<topic>.dead``
        (the caller acknowledges it afterwards)."""
        ...

    def close(self) -> None: ...
