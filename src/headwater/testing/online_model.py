"""The brute-force model, test data and concurrent writers of the online conformance suite
(:mod:`headwater.testing.online`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Barrier
from typing import Any, Protocol

from hypothesis import strategies as st

from headwater.online.base import OnlineStore
from headwater.online.encoding import ORDER_BYTES, decode_values, encode_key, encode_record

StoreFactory = Callable[[], OnlineStore]
Batch = tuple[list[bytes], list[bytes]]

DAY_US = 86_400_000_000
BARRIER_TIMEOUT_S = 120.0
_PASSES = 3  # each concurrent writer writes its whole sequence at least this often

# Keys with NUL and 0xFF bytes, hash-tag braces, and one a prefix of another.
BINARY_KEYS: tuple[bytes, ...] = (
    b"\x00", b"\x00\x00", b"\xff", b"\xff\x00\xff", b"{}", b"}{", b"a}b{c",
    encode_key(["driver_id"], [1001]), encode_key(["origin", "carrier"], ["JFK", 7]),
)
EVENT_TIMES = st.sampled_from(
    [-(2**62), -DAY_US, -1, 0, 1, DAY_US, 2**62])  # before 1970 too
CREATED_TIMES = st.none() | st.sampled_from([-DAY_US, -1, 0, 1, DAY_US])
GENERATIONS = st.sampled_from([0, 1, 0xFFFFFFFF])
PAYLOADS = st.binary(max_size=6)


def record(event_us: int, created_us: int | None = None, payload: object = b"",
           generation: int = 0) -> bytes:
    """A record as :func:`~headwater.online.encoding.encode_record` makes it."""
    return encode_record(event_us, created_us, generation, [payload])


def int_keys(n: int, start: int = 0) -> list[bytes]:
    """``n`` encoded single-column integer entity keys."""
    return [encode_key(["id"], [i]) for i in range(start, start + n)]


def new_view(prefix: str = "view") -> str:
    """A view name no other test or example uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class Model:
    """The brute-force reference: per key the record with the greatest first ORDER_BYTES
    bytes (definition generation, then times); among equal ones the last written."""

    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}

    def write(self, keys: Sequence[bytes], records: Sequence[bytes]) -> int:
        stored = 0
        for key, value in zip(keys, records, strict=True):
            old = self.records.get(key)
            if old is None or value[:ORDER_BYTES] >= old[:ORDER_BYTES]:
                self.records[key] = value
                stored += 1
        return stored


def batches(writer_count: int) -> st.SearchStrategy[list[list[Batch]]]:
    """Per writer, a list of small batches whose order bytes never tie across writers
    (the created time's remainder modulo ``writer_count`` is the writer) and share one
    generation, so the expected end state does not depend on the interleaving."""

    def one_writer(writer: int) -> st.SearchStrategy[list[Batch]]:
        item = st.tuples(st.sampled_from(BINARY_KEYS), EVENT_TIMES,
                         st.integers(-3, 3), PAYLOADS, st.just(0))

        def to_batch(items: list[tuple[bytes, int, int, bytes, int]]) -> Batch:
            keys = [key for key, *_ in items]
            records = [record(event, created * writer_count + writer, payload, fp)
                       for _, event, created, payload, fp in items]
            return keys, records

        return st.lists(st.lists(item, min_size=1, max_size=4).map(to_batch),
                        min_size=1, max_size=25)

    return st.tuples(*(one_writer(w) for w in range(writer_count))).map(list)


def expected_after_concurrent(writers: list[list[Batch]]) -> dict[bytes, bytes]:
    """Each writer's own sequential end state, then the greatest across writers (no ties
    across writers by construction)."""
    expected: dict[bytes, bytes] = {}
    for batches in writers:
        model = Model()
        for keys, records in batches:
            model.write(keys, records)
        for key, value in model.records.items():
            old = expected.get(key)
            if old is None or value[:ORDER_BYTES] > old[:ORDER_BYTES]:
                expected[key] = value
    return expected


class _Counters(Protocol):
    def __getitem__(self, index: int) -> int: ...
    def __setitem__(self, index: int, value: int) -> None: ...
    def __len__(self) -> int: ...


def write_passes(store: OnlineStore, view: str, batches: list[Batch], *, writer: int,
                  passes: _Counters, lock: AbstractContextManager[Any]) -> None:
    """Write ``batches`` again and again until every writer has made ``_PASSES`` passes.

    The fastest writer keeps writing while the slowest makes its passes, so the writers
    overlap for the slowest one's whole run however the scheduler starts them. Repeating a
    sequence leaves the end state of writing it once. A writer that stops, even on an error,
    counts as done so that the others stop too."""
    try:
        while True:
            for keys, records in batches:
                store.write(view, keys, records)
            with lock:
                passes[writer] += 1
                if min(passes[i] for i in range(len(passes))) >= _PASSES:
                    return
    finally:
        with lock:
            passes[writer] = max(passes[writer], _PASSES)


# A writer process's barrier and pass counters, set by the pool's initializer (they must be
# inherited at process start, not sent with each task).
_process_state: list[tuple[Barrier, SynchronizedArray[int]]] = []


def init_writer_process(barrier: Barrier, passes: SynchronizedArray[int]) -> None:
    _process_state[:] = [(barrier, passes)]


def write_in_process(factory: StoreFactory, view: str, batches: list[Batch],
                      writer: int) -> None:
    """Run in a worker process: open a store, wait for the other writer, write."""
    ((barrier, passes),) = _process_state
    store = factory()
    try:
        barrier.wait(BARRIER_TIMEOUT_S)
        write_passes(store, view, batches, writer=writer, passes=passes,
                      lock=passes.get_lock())
    finally:
        store.close()




# -- exactly-once updates ------------------------------------------------------------------

Delivery = list[tuple[bytes, str]]
"""One update's events: (entity key, event id) pairs."""


def append_unmarked(deliveries: Delivery) -> Callable[[set[str], dict[bytes, bytes | None]],
                                                       dict[bytes, bytes]]:
    """An update's ``modify`` whose records list the ids applied to each key: it appends the
    ids not marked yet, so a lost update or a double application shows in the record."""

    def modify(marked: set[str], current: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
        applied = {key: [] if data is None else list(decode_values(data)[0])
                   for key, data in current.items()}
        for key, event_id in deliveries:
            if event_id not in marked:
                applied[key].append(event_id)
                marked = marked | {event_id}  # an id twice in one delivery counts once
        return {key: record(0, None, ids) for key, ids in applied.items()}

    return modify


def applied_ids(data: bytes | None) -> list[str]:
    """The ids a record written by :func:`append_unmarked` lists."""
    return [] if data is None else list(decode_values(data)[0])


def update_in_process(factory: StoreFactory, view: str, scope: str,
                      deliveries: list[Delivery], defer: bool = False) -> None:
    """Run in a worker process: open a store, wait for the other writer, apply each
    delivery with its ids under ``scope``. With ``defer`` as a stream consumer does: each
    update deferred with the hint that its ids are unmarked (wrong for redeliveries), and
    the one before it settled once it is sent."""
    ((barrier, _),) = _process_state
    store = factory()
    try:
        barrier.wait(BARRIER_TIMEOUT_S)
        for delivery in deliveries:
            keys = [key for key, _ in delivery]
            store.update(view, keys, append_unmarked(delivery), scope=scope,
                         ids=[event_id for _, event_id in delivery], likely_unmarked=defer,
                         defer=defer)
            store.settle(keep=1)
        store.settle()
    finally:
        store.close()
