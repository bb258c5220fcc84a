"""The records an online store client last read or wrote, by version, to skip re-reading them.

:meth:`headwater.online.redis.RedisOnlineStore.update` stores with each record a *version*,
a token that every update of the record replaces with a new one (random, so a version is never
used twice, even after the record was deleted and written again). A client that holds a
record with its version sends the version instead of asking for the record; the server
answers "unchanged" when the stored version is the same, and the client uses the record it
holds. The server decides, so a held record is only ever a hint: a stale one costs the
record's transfer, never a wrong value.

The cache is bounded by the bytes it holds (``max_bytes``: each record, its key and version,
and :data:`ENTRY_OVERHEAD` for the Python objects of the entry); past that it forgets the
records it learned first. Safe to share across threads (one lock, taken once
per batch of keys).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
ENTRY_OVERHEAD = 200
"""Bytes counted per entry besides its key, version and record (the entry's tuple, dict
slot and bytes object headers, measured with sys.getsizeof on CPython 3.11)."""

Held = tuple[bytes, bytes]
"""A held record: (version, record)."""


class RecordCache:
    """Per view field, entity key -> (version, record)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._fields: dict[bytes, dict[bytes, Held]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def held(self, field: bytes, keys: Sequence[bytes]) -> list[Held | None]:
        """The (version, record) held for each key, None where none."""
        with self._lock:
            held = self._fields.get(field)
            return [None] * len(keys) if held is None else list(map(held.get, keys))

    def keep(self, field: bytes, keys: Sequence[bytes], versions: Sequence[bytes],
             records: Sequence[bytes]) -> None:
        """Hold ``records[i]`` at ``versions[i]`` for ``keys[i]``, replacing what was held;
        a key learned again counts as learned now."""
        if not keys:
            return
        with self._lock:
            held = self._fields.setdefault(field, {})
            gone = sum(_size(key, entry) for key, entry
                       in zip(keys, map(held.pop, keys, [None] * len(keys)), strict=True)
                       if entry is not None)
            held.update(zip(keys, zip(versions, records, strict=True), strict=True))
            self._bytes += (sum(map(len, keys)) + sum(map(len, versions))
                            + sum(map(len, records)) + ENTRY_OVERHEAD * len(keys) - gone)
            self._evict()

    def _evict(self) -> None:
        """Forget the records learned first until the bytes fit (one pass per field)."""
        excess = self._bytes - self.max_bytes
        for held in self._fields.values():
            if excess <= 0:
                return
            drop = []
            for key, entry in held.items():
                if excess <= 0:
                    break
                drop.append(key)
                excess -= _size(key, entry)
            for key in drop:
                self._bytes -= _size(key, held.pop(key))

    def forget(self, field: bytes) -> None:
        """Drop every record of one view field."""
        with self._lock:
            held = self._fields.pop(field, {})
            self._bytes -= sum(_size(key, entry) for key, entry in held.items())

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return sum(map(len, self._fields.values()))


def _size(key: bytes, entry: Held) -> int:
    return len(key) + len(entry[0]) + len(entry[1]) + ENTRY_OVERHEAD
