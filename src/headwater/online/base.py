"""The online store protocol.

An online store keeps one record per (feature view, entity): the latest feature row it was
given, with its event time. Keys and records are opaque bytes made by
:mod:`headwater.online.encoding`; a store only compares the first
:data:`~headwater.online.encoding.ORDER_BYTES` bytes of records, which sort like the
``(definition generation, event time, created time)`` triple. A write never replaces a
stored record with one that sorts lower; an equal one replaces it (a later delivery wins a
tie, as in the offline join). So a newer definition of a view always replaces records of an
older one, and a writer still working under an older definition never overwrites newer ones.

Implementations: ``sqlite.py`` (embedded default), ``redis.py`` (production). One
conformance suite (``headwater.testing.online``) runs against every implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ViewKeys:
    """The entity keys asked of one view in a read."""

    view: str
    keys: Sequence[bytes]


class OnlineStore(Protocol):
    """What serving and materialization need from an online store."""

    def write(self, view: str, keys: Sequence[bytes], records: Sequence[bytes]) -> int:
        """Upsert ``records[i]`` under ``(view, keys[i])`` unless the stored record sorts
        higher. Atomic per record; returns how many records were stored."""
        ...

    def read(self, requests: Sequence[ViewKeys]) -> list[list[bytes | None]]:
        """One round trip: for each request, the stored record of each key (None if none),
        in request order."""
        ...

    def delete_view(self, view: str) -> int:
        """Remove every record of a view; returns how many were removed."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailableError if the store cannot be reached."""
        ...

    def close(self) -> None: ...
