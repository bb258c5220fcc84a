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

import heapq
import threading
from collections.abc import Iterator, Sequence
from itertools import compress, repeat
from operator import itemgetter, not_

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
ENTRY_OVERHEAD = 200
"""Bytes counted per entry besides its key, version and record: the entry's tuple, dict
slot and bytes object headers, measured with sys.getsizeof on CPython 3.11 when entries
were keyed by a (field, key) tuple; entries now take less, so the bound errs on the safe
side."""

Held = tuple[bytes, bytes, int]
"""A held record: (version, record, when it was learned: how many keeps came before)."""


class RecordCache:
    """Per view field, entity key -> :data:`Held`, each field's learned first first (one
    dict per field: a lookup makes no key tuple)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._fields: dict[bytes, dict[bytes, Held]] = {}
        self._bytes = 0
        self._learned = 0
        self._lock = threading.Lock()

    def held(self, field: bytes, keys: Sequence[bytes]) -> list[Held | None]:
        """What is held for each key (version, record, when learned), None where none."""
        with self._lock:
            found = self._fields.get(field)
            return list(map(found.get, keys)) if found else [None] * len(keys)

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
            known = self._fields.get(field, {})
            fresh = list(map(not_, map(known.__contains__, keys)))
            self._store(field, list(compress(keys, fresh)), list(compress(versions, fresh)),
                        list(compress(records, fresh)))

    def _store(self, field: bytes, keys: Sequence[bytes], versions: Sequence[bytes],
               records: Sequence[bytes]) -> None:
        if not keys:
            return
        held = self._fields.setdefault(field, {})
        popped = list(map(held.pop, keys, repeat(None, len(keys))))
        live = list(filter(None, popped))
        gone = (sum(map(len, compress(keys, popped))) + ENTRY_OVERHEAD * len(live)
                + sum(map(len, map(itemgetter(0), live)))
                + sum(map(len, map(itemgetter(1), live))))
        held.update(zip(keys, zip(versions, records, repeat(self._learned), strict=False),
                        strict=True))
        self._learned += 1
        self._bytes += (sum(map(len, keys)) + sum(map(len, versions))
                        + sum(map(len, records)) + ENTRY_OVERHEAD * len(keys) - gone)
        self._evict()

    def _evict(self) -> None:
        """Forget the records learned first, over every field, until the bytes fit: the
        fields' oldest-first orders merged by when each record was learned (one pass)."""
        excess = self._bytes - self.max_bytes
        if excess <= 0:
            return
        heads: list[tuple[int, int, bytes, Held, Iterator[tuple[bytes, Held]], bytes]] = []
        for index, (field, held) in enumerate(self._fields.items()):
            walk = iter(held.items())
            first = next(walk, None)
            if first is not None:
                heads.append((first[1][2], index, *first, walk, field))
        heapq.heapify(heads)
        drop = []
        while excess > 0 and heads:
            _, index, key, entry, walk, field = heapq.heappop(heads)
            drop.append((field, key))
            excess -= _size(key, entry)
            after = next(walk, None)
            if after is not None:
                heapq.heappush(heads, (after[1][2], index, *after, walk, field))
        for field, key in drop:
            self._bytes -= _size(key, self._fields[field].pop(key))

    def forget(self, field: bytes, keys: Sequence[bytes] | None = None) -> None:
        """Drop the records of ``keys`` (every key when None) of one view field."""
        with self._lock:
            held = self._fields.get(field)
            if not held:
                return
            for key in list(held) if keys is None else [k for k in dict.fromkeys(keys)
                                                        if k in held]:
                self._bytes -= _size(key, held.pop(key))

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return sum(map(len, self._fields.values()))


def _size(key: bytes, entry: Held) -> int:
    return len(key) + len(entry[0]) + len(entry[1]) + ENTRY_OVERHEAD
