"""The records an online store client last read or wrote, by version, to skip re-reading them.

The Redis stores' ``update`` (:mod:`headwater.online.redis_update`, on one server and on
Redis Cluster) stores with each record a *version*, a token that every update of the record
replaces with a new one (random, so a version is never used twice, even after the record was
deleted and written again). A client that holds a
record with its version sends the version instead of asking for the record; the server
answers "unchanged" when the stored version is the same, and the client uses the record it
holds. The server decides, so a held record is only ever a hint: a stale one costs the
record's transfer, never a wrong value.

The cache is bounded by the bytes it holds (``max_bytes``: each record, its key and version,
and :data:`ENTRY_OVERHEAD` for the Python objects of the entry); past that it forgets the
records it learned first. Safe to share across threads (one lock, taken once
per batch of keys).

An empty version and record (``(b"", b"")``) hold that no record was stored when read (a
real record is never empty: it starts with its header).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import compress, repeat
from operator import itemgetter

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
ENTRY_OVERHEAD = 200
"""Bytes counted per entry besides its key, version and record (the entry's tuple, dict
slot and bytes object headers, measured with sys.getsizeof on CPython 3.11)."""

Held = tuple[bytes, bytes]
"""A held record: (version, record)."""


class RecordCache:
    """(view field, entity key) -> (version, record), oldest first."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._held: dict[tuple[bytes, bytes], Held] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def held(self, field: bytes, keys: Sequence[bytes]) -> list[Held | None]:
        """The (version, record) held for each key, None where none."""
        with self._lock:
            return list(map(self._held.get, zip(repeat(field), keys)))

    def keep(self, field: bytes, keys: Sequence[bytes], versions: Sequence[bytes],
             records: Sequence[bytes]) -> None:
        """Hold ``records[i]`` at ``versions[i]`` for ``keys[i]``, replacing what was held;
        a key learned again counts as learned now."""
        with self._lock:
            self._store(field, keys, versions, records)

    def keep_new(self, field: bytes, keys: Sequence[bytes], versions: Sequence[bytes],
                 records: Sequence[bytes]) -> None:
        """:meth:`keep` for the keys that hold nothing: what another thread kept before
        (a commit's newer records) stays."""
        with self._lock:
            fresh = [slot not in self._held for slot in zip(repeat(field), keys)]
            self._store(field, list(compress(keys, fresh)), list(compress(versions, fresh)),
                        list(compress(records, fresh)))

    def _store(self, field: bytes, keys: Sequence[bytes], versions: Sequence[bytes],
               records: Sequence[bytes]) -> None:
        if not keys:
            return
        slots = list(zip(repeat(field), keys))
        held = self._held
        popped = list(map(held.pop, slots, repeat(None, len(slots))))
        live = list(filter(None, popped))
        gone = (sum(map(len, compress(keys, popped))) + ENTRY_OVERHEAD * len(live)
                + sum(map(len, map(itemgetter(0), live)))
                + sum(map(len, map(itemgetter(1), live))))
        held.update(zip(slots, zip(versions, records, strict=True), strict=True))
        self._bytes += (sum(map(len, keys)) + sum(map(len, versions))
                        + sum(map(len, records)) + ENTRY_OVERHEAD * len(keys) - gone)
        self._evict()

    def _evict(self) -> None:
        """Forget the records learned first until the bytes fit (one pass)."""
        excess = self._bytes - self.max_bytes
        if excess <= 0:
            return
        drop = []
        for slot, entry in self._held.items():
            if excess <= 0:
                break
            drop.append(slot)
            excess -= _size(slot[1], entry)
        for slot in drop:
            self._bytes -= _size(slot[1], self._held.pop(slot))

    def forget(self, field: bytes, keys: Sequence[bytes] | None = None) -> None:
        """Drop the records of ``keys`` (every key when None) of one view field."""
        with self._lock:
            slots = ([s for s in self._held if s[0] == field] if keys is None
                     else [s for s in zip(repeat(field), keys) if s in self._held])
            for slot in slots:
                self._bytes -= _size(slot[1], self._held.pop(slot))

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._held)


def _size(key: bytes, entry: Held) -> int:
    return len(key) + len(entry[0]) + len(entry[1]) + ENTRY_OVERHEAD
