"""The online store conformance suite: what every backend must do, as pytest tests.

Subclass :class:`OnlineStoreSuite` in a test module (the subclass name must start with
``Test``) and provide a fixture ``online_store_factory``: a picklable callable without
arguments that opens a new store instance on the same storage each time it is called (a
``functools.partial`` over the store class does). Writers in other processes open stores with
it, so it must not be a lambda or a closure::

    import functools
    import pytest
    from headwater.testing.online import OnlineStoreSuite

    class TestMyStore(OnlineStoreSuite):
        @pytest.fixture
        def online_store_factory(self, tmp_path):
            return functools.partial(MyOnlineStore, tmp_path / "online.db")

The laws: reads give each stored record or None, in request order, for any mix of views and
entities; a write never replaces a record with one whose first
:data:`~headwater.online.encoding.ORDER_BYTES` bytes sort lower (byte order, which is
``(definition generation, event time, created time)`` order, before 1970 too), and an
equal one replaces it; write
counts what it stored; keys and records are arbitrary bytes. Random write sequences, from one
instance, from threads sharing one instance and from two processes writing at once, are
checked against a brute-force model. Tests wait on barriers, never on the clock.

``update`` (exactly-once read-modify-write, :class:`UpdateSuite`): ``modify`` sees the stored
records and the ids already marked under the scope, what it returns is stored and the ids
marked in one transaction, a failing ``modify`` stores and marks nothing, markers older than
the retention are forgotten, and two processes updating the same entities with overlapping
redeliveries lose no update and apply each id once. For these the factory must also accept
the keyword ``marker_retention`` (a timedelta), as the stores' constructors do.

This module needs pytest and hypothesis; ``import headwater`` never imports it.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.errors import DataError
from headwater.online.base import OnlineStore, ViewKeys
from headwater.online.encoding import encode_key
from headwater.testing.online_model import (
    BARRIER_TIMEOUT_S,
    BINARY_KEYS,
    CREATED_TIMES,
    DAY_US,
    EVENT_TIMES,
    GENERATIONS,
    PAYLOADS,
    Batch,
    Delivery,
    Model,
    StoreFactory,
    append_unmarked,
    applied_ids,
    batches,
    expected_after_concurrent,
    init_writer_process,
    int_keys,
    new_view,
    record,
    update_in_process,
    write_in_process,
    write_passes,
)

_SUPPRESS = (HealthCheck.function_scoped_fixture, HealthCheck.too_slow)


@contextmanager
def two_stores(factory: StoreFactory) -> Iterator[tuple[OnlineStore, OnlineStore]]:
    """Two instances on the same storage (this client's and another writer's), closed
    after."""
    mine, other = factory(), factory()
    try:
        yield mine, other
    finally:
        mine.close()
        other.close()


class UpdateSuite:
    """The exactly-once read-modify-write laws (``update`` and ``markers_present``), mixed
    into :class:`OnlineStoreSuite`. ``online_store_factory`` must also accept the keyword
    ``marker_retention`` (a timedelta), as the stores' constructors do."""

    def test_update_reads_current_records_and_stores_what_modify_returns(
            self, store: OnlineStore) -> None:
        view, keys = new_view(), int_keys(3)
        store.write(view, keys[:1], [record(5, None, "stored")])
        seen: list[tuple[set[str], dict[bytes, bytes | None]]] = []

        def modify(marked: set[str], current: dict[bytes, bytes | None]
                   ) -> dict[bytes, bytes]:
            seen.append((marked, current))
            return {keys[0]: record(1, None, "older, stored anyway"), keys[2]: record(2)}

        assert store.update(view, [keys[0], keys[2], keys[0]], modify) == 2
        assert seen[-1] == (set(), {keys[0]: record(5, None, "stored"), keys[2]: None})
        assert store.read([ViewKeys(view, keys)]) == [
            [record(1, None, "older, stored anyway"), None, record(2)]]
        assert store.update(view, [], lambda marked, current: {}) == 0

    @pytest.mark.parametrize("defer", [False, True], ids=["settled", "deferred"])
    def test_what_modify_must_not_return_is_refused_and_nothing_stored(
            self, store: OnlineStore, defer: bool) -> None:
        view, keys, scope = new_view(), int_keys(3), new_view("scope")
        refused: list[tuple[dict[bytes, Any], str]] = [
            ({keys[0]: record(1), keys[2]: record(2)}, "did not read"),
            ({keys[0]: record(1), keys[1]: b"short"}, "order header"),
            ({keys[0]: memoryview(record(1, None, "x" * 40)[:40]).cast("q")}, "not bytes")]
        for returned, says in refused:

            def modify(marked: set[str], current: dict[bytes, bytes | None],
                       returned: dict[bytes, Any] = returned) -> dict[bytes, bytes]:
                return returned

            with pytest.raises(DataError, match=says):
                store.update(view, keys[:2], modify, scope=scope, ids=["a"],
                             likely_unmarked=True, defer=defer)
            store.settle()
        assert store.read([ViewKeys(view, keys)]) == [[None, None, None]]
        assert store.markers_present(scope, ["a"]) == set()

    def test_update_marks_ids_and_markers_under_its_scope(self, store: OnlineStore) -> None:
        view, (key,) = new_view(), int_keys(1)
        scope, other = new_view("scope"), new_view("scope")
        first = append_unmarked([(key, "a"), (key, "b")])
        store.update(view, [key], first, scope=scope, ids=["a", "b"], markers=["batch-1"])
        assert store.markers_present(scope, ["a", "b", "batch-1", "c"]) == {"a", "b", "batch-1"}
        assert store.markers_present(other, ["a", "b", "batch-1"]) == set()
        assert store.markers_present(scope, []) == set()
        # a re-delivery with one new id: only that one is applied
        again = append_unmarked([(key, "b"), (key, "c"), (key, "a")])
        store.update(view, [key], again, scope=scope, ids=["b", "c", "a"])
        (got,) = store.read([ViewKeys(view, [key])])[0]
        assert applied_ids(got) == ["a", "b", "c"]
        # the same ids under another scope are new there
        store.update(view, [key], append_unmarked([(key, "a")]), scope=other, ids=["a"])
        assert applied_ids(store.read([ViewKeys(view, [key])])[0][0]) == ["a", "b", "c", "a"]

    def test_a_wrong_likely_unmarked_hint_still_applies_each_id_once(
            self, store: OnlineStore) -> None:
        view, (key,) = new_view(), int_keys(1)
        scope = new_view("scope")
        store.update(view, [key], append_unmarked([(key, "a")]), scope=scope, ids=["a"])
        seen: list[set[str]] = []
        inner = append_unmarked([(key, "a"), (key, "b")])

        def modify(marked: set[str], current: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
            seen.append(marked)
            return inner(marked, current)

        # "a" is marked already: the hint is wrong, and the transaction finds it out
        store.update(view, [key], modify, scope=scope, ids=["a", "b"], likely_unmarked=True)
        assert seen[-1] == {"a"}
        assert applied_ids(store.read([ViewKeys(view, [key])])[0][0]) == ["a", "b"]
        assert store.markers_present(scope, ["a", "b"]) == {"a", "b"}

    def test_an_update_that_fails_stores_and_marks_nothing(self, store: OnlineStore) -> None:
        view, keys, scope = new_view(), int_keys(2), new_view("scope")
        store.write(view, keys[:1], [record(1)])

        def boom(marked: set[str], current: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
            raise ValueError("modify failed")

        with pytest.raises(ValueError, match="modify failed"):
            store.update(view, keys, boom, scope=scope, ids=["x"], markers=["m"])
        with pytest.raises(DataError, match="did not read"):
            store.update(view, keys[:1], lambda m, c: {keys[1]: record(2)}, scope=scope,
                         ids=["y"])
        with pytest.raises(DataError, match="encode_record"):
            store.update(view, keys[:1], lambda m, c: {keys[0]: b"short"}, scope=scope)
        with pytest.raises(DataError, match="without a scope"):
            store.update(view, keys[:1], lambda m, c: {keys[0]: record(3)}, ids=["z"])
        assert store.read([ViewKeys(view, keys)]) == [[record(1), None]]
        assert store.markers_present(scope, ["x", "m", "y", "z"]) == set()
        # the store is still usable after the failures
        assert store.update(view, keys[:1], lambda m, c: {keys[0]: record(4)}) == 1

    def test_markers_older_than_the_retention_are_pruned(
            self, online_store_factory: Callable[..., OnlineStore]) -> None:
        forgetful = online_store_factory(marker_retention=timedelta(0))
        keeping = online_store_factory()
        try:
            view, (key,), scope = new_view(), int_keys(1), new_view("scope")
            forgetful.update(view, [key], append_unmarked([(key, "a")]), scope=scope,
                             ids=["a"])
            assert forgetful.markers_present(scope, ["a"]) == set()
            # a longer retention still sees the marker until the next pruning update
            assert keeping.markers_present(scope, ["a"]) == {"a"}
            forgetful.update(view, [key], append_unmarked([(key, "a")]), scope=scope,
                             ids=["a"])
            assert applied_ids(keeping.read([ViewKeys(view, [key])])[0][0]) == ["a", "a"]
            assert keeping.markers_present(scope, ["a"]) == {"a"}  # pruned, then marked anew
        finally:
            forgetful.close()
            keeping.close()

    def test_deferred_updates_settle_to_each_effect_once(self, store: OnlineStore) -> None:
        view, keys, scope = new_view(), int_keys(2), new_view("scope")
        for batch, event_id in enumerate(["a", "b", "c"]):
            sent = store.update(view, keys, append_unmarked([(keys[batch % 2], event_id)]),
                                scope=scope, ids=[event_id], likely_unmarked=True, defer=True)
            assert sent == 2  # modify's records, counted when sent
            assert store.pending() <= batch + 1
        store.settle(keep=1)
        assert store.pending() <= 1
        store.settle()
        assert store.pending() == 0
        assert [applied_ids(r) for r in store.read([ViewKeys(view, keys)])[0]] == [
            ["a", "c"], ["b"]]
        assert store.markers_present(scope, ["a", "b", "c"]) == {"a", "b", "c"}

    def test_a_deferred_update_on_records_another_writer_changed_runs_again(
            self, online_store_factory: StoreFactory) -> None:
        with two_stores(online_store_factory) as (mine, other):
            view, (key,), scope = new_view(), int_keys(1), new_view("scope")
            mine.update(view, [key], append_unmarked([(key, "a")]), scope=scope, ids=["a"])
            # another writer applies "b" and marks "c", unknown to `mine`
            other.update(view, [key], append_unmarked([(key, "b")]), scope=scope, ids=["b"])
            other.update(view, [key], append_unmarked([(key, "c")]), scope=scope, ids=["c"])
            calls: list[set[str]] = []
            inner = append_unmarked([(key, "c"), (key, "d")])

            def modify(marked: set[str], current: dict[bytes, bytes | None]
                       ) -> dict[bytes, bytes]:
                calls.append(marked)
                return inner(marked, current)

            # the first deferred update merges onto what `mine` last wrote (stale), the
            # second onto the first's unconfirmed records: settling runs both again
            mine.update(view, [key], modify, scope=scope, ids=["c", "d"],
                        likely_unmarked=True, defer=True)
            mine.update(view, [key], append_unmarked([(key, "e")]), scope=scope, ids=["e"],
                        likely_unmarked=True, defer=True)
            mine.settle()
            assert calls[-1] == {"c"}
            assert applied_ids(other.read([ViewKeys(view, [key])])[0][0]) == [
                "a", "b", "c", "d", "e"]
            assert mine.markers_present(scope, list("abcde")) == set("abcde")

    def test_a_deferred_update_reads_the_records_it_does_not_hold(
            self, online_store_factory: StoreFactory) -> None:
        with two_stores(online_store_factory) as (mine, other):
            view, (held, unheld, absent), scope = new_view(), int_keys(3), new_view("scope")
            mine.update(view, [held], append_unmarked([(held, "a")]), scope=scope, ids=["a"])
            # another writer stores a record `mine` never saw
            other.update(view, [unheld], append_unmarked([(unheld, "b")]), scope=scope,
                         ids=["b"])
            seen: list[dict[bytes, bytes | None]] = []
            inner = append_unmarked([(held, "c"), (unheld, "c2"), (absent, "c3")])

            def modify(marked: set[str], current: dict[bytes, bytes | None]
                       ) -> dict[bytes, bytes]:
                seen.append(dict(current))
                return inner(marked, current)

            mine.update(view, [held, unheld, absent], modify, scope=scope,
                        ids=["c", "c2", "c3"], likely_unmarked=True, defer=True)
            mine.settle()
            # modify ran once, on what was stored: the held record, the other writer's
            # record read for this update, and nothing for the absent entity
            assert len(seen) == 1
            assert [applied_ids(seen[0][k]) if seen[0][k] else None
                    for k in (held, unheld, absent)] == [["a"], ["b"], None]
            assert [applied_ids(r) for r in other.read([ViewKeys(view, [held, unheld,
                                                                        absent])])[0]] == [
                ["a", "c"], ["b", "c2"], ["c3"]]

    def test_a_prefetch_is_a_hint_the_commit_checks(
            self, online_store_factory: StoreFactory) -> None:
        with two_stores(online_store_factory) as (mine, other):
            view, scope = new_view(), new_view("scope")
            stored, absent, plain, changed, taken = int_keys(5)
            other.update(view, [stored, changed], append_unmarked([(stored, "a"),
                                                                   (changed, "b")]),
                         scope=scope, ids=["a", "b"])
            other.write(view, [plain], [record(0, None, ["p"])])
            keys = [stored, absent, plain, changed, taken]
            mine.prefetch(view, keys)
            # after the prefetch, another writer changes one record and stores one that
            # was absent
            other.update(view, [changed, taken], append_unmarked([(changed, "c"),
                                                                  (taken, "t")]),
                         scope=scope, ids=["c", "t"])
            seen: list[list[list[str] | None]] = []
            inner = append_unmarked([(key, f"d{i}") for i, key in enumerate(keys)])

            def modify(marked: set[str], current: dict[bytes, bytes | None]
                       ) -> dict[bytes, bytes]:
                seen.append([applied_ids(current[k]) if current[k] else None for k in keys])
                return inner(marked, current)

            mine.update(view, keys, modify, scope=scope, ids=[f"d{i}" for i in range(5)],
                        likely_unmarked=True, defer=True)
            mine.settle()
            # whatever ran first, the run that counted saw what is stored now
            assert seen[-1] == [["a"], None, ["p"], ["b", "c"], ["t"]]
            assert [applied_ids(r) for r in other.read([ViewKeys(view, keys)])[0]] == [
                ["a", "d0"], ["d1"], ["p", "d2"], ["b", "c", "d3"], ["t", "d4"]]
            assert mine.markers_present(scope, [f"d{i}" for i in range(5)]) == {
                f"d{i}" for i in range(5)}

    @pytest.mark.parametrize("defer", [False, True], ids=["settled", "deferred"])
    def test_processes_updating_the_same_entities_lose_nothing_and_apply_once(
            self, online_store_factory: StoreFactory, defer: bool) -> None:
        view, scope, keys = new_view(), new_view("scope"), [*BINARY_KEYS[:4], *int_keys(2)]
        rng = random.Random(7)
        plans: list[list[Delivery]] = []
        expected: dict[bytes, list[str]] = {key: [] for key in keys}
        for writer in range(2):
            events = [(rng.choice(keys), f"w{writer}-{i}") for i in range(300)]
            for key, event_id in events:
                expected[key].append(event_id)
            deliveries: list[Delivery] = []
            i = 0
            while i < len(events):
                size = rng.randint(1, 12)
                deliveries.append(events[i:i + size])
                if rng.random() < 0.3:  # redelivered, as after a crash before the ack
                    deliveries.append(events[max(0, i - 5):i + size])
                i += size
            plans.append(deliveries)
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(2)
        with ProcessPoolExecutor(2, mp_context=ctx, initializer=init_writer_process,
                                 initargs=(barrier, ctx.Array("i", 2))) as pool:
            futures = [pool.submit(update_in_process, online_store_factory, view, scope, plan,
                                   defer) for plan in plans]
            for future in futures:
                future.result()
        reader = online_store_factory()
        try:
            (got,) = reader.read([ViewKeys(view, keys)])
            for key, data in zip(keys, got, strict=True):
                ids = applied_ids(data)
                assert sorted(ids) == sorted(expected[key])  # none lost, none twice
                if defer:  # one that ran again lands after those sent after it
                    continue
                for writer in range(2):  # each writer's events in its own order
                    mine = [i for i in ids if i.startswith(f"w{writer}-")]
                    assert mine == [i for i in expected[key] if i.startswith(f"w{writer}-")]
        finally:
            reader.close()


class OnlineStoreSuite(UpdateSuite):
    """The conformance tests; subclass with a ``Test`` name and an ``online_store_factory``
    fixture. ``max_examples`` and ``concurrent_examples`` size the random tests."""

    max_examples = 60
    concurrent_examples = 8

    @pytest.fixture
    def store(self, online_store_factory: StoreFactory) -> Iterator[OnlineStore]:
        instance = online_store_factory()
        yield instance
        instance.close()

    # -- reads ---------------------------------------------------------------------------

    def test_round_trip_of_many_keys_and_views(self, store: OnlineStore) -> None:
        keys = int_keys(300)
        views = [new_view("a"), new_view("b"), new_view("vüe")]
        written: dict[str, list[bytes]] = {}
        for view in views:
            records = [record(i * 1_000, i, f"{view}-{i}") for i in range(len(keys))]
            assert store.write(view, keys, records) == len(keys)
            written[view] = records
        got = store.read([ViewKeys(views[0], keys), ViewKeys(views[1], keys),
                          ViewKeys(views[2], keys[::-1])])
        assert got == [written[views[0]], written[views[1]], written[views[2]][::-1]]
        for n, view in enumerate(views):
            assert store.read([ViewKeys(view, keys[n:n + 1])]) == [[written[view][n]]]

    def test_unknown_keys_and_views_read_none(self, store: OnlineStore) -> None:
        view = new_view()
        keys = int_keys(3)
        store.write(view, keys[:1], [record(1)])
        assert store.read([ViewKeys(view, keys)]) == [[record(1), None, None]]
        assert store.read([ViewKeys(new_view(), keys[:1])]) == [[None]]
        assert store.read([ViewKeys(view, keys[1:2])]) == [[None]]
        assert store.read([ViewKeys(new_view(), keys), ViewKeys(view, keys[:1])]) == [
            [None, None, None], [record(1)]]

    def test_empty_requests_and_batches(self, store: OnlineStore) -> None:
        view = new_view()
        assert store.write(view, [], []) == 0
        assert store.read([]) == []
        assert store.read([ViewKeys(view, [])]) == [[]]
        assert store.read([ViewKeys(view, []), ViewKeys(new_view(), [])]) == [[], []]

    def test_one_read_mixes_views_and_entities_in_request_order(
            self, store: OnlineStore) -> None:
        trips, rates, routes = new_view("trips"), new_view("rates"), new_view("routes")
        drivers = int_keys(4)
        route_keys = [encode_key(["origin", "carrier"], ["JFK", c]) for c in range(3)]
        store.write(trips, drivers, [record(1, None, f"t{i}") for i in range(4)])
        store.write(rates, drivers[:2], [record(2, None, f"r{i}") for i in range(2)])
        store.write(routes, route_keys, [record(3, None, f"o{i}") for i in range(3)])
        got = store.read([
            ViewKeys(trips, [drivers[2], drivers[0]]),
            ViewKeys(routes, [route_keys[1]]),
            ViewKeys(rates, [drivers[0], drivers[3], drivers[1]]),
            ViewKeys(trips, [drivers[0]]),
            ViewKeys(rates, []),
            ViewKeys(routes, [drivers[0], route_keys[2]]),
        ])
        assert got == [
            [record(1, None, "t2"), record(1, None, "t0")],
            [record(3, None, "o1")],
            [record(2, None, "r0"), None, record(2, None, "r1")],
            [record(1, None, "t0")],
            [],
            [None, record(3, None, "o2")],
        ]

    def test_duplicate_keys_in_one_request(self, store: OnlineStore) -> None:
        view, other = new_view(), new_view()
        keys = int_keys(2)
        store.write(view, keys, [record(1, None, "a"), record(1, None, "b")])
        a, b = record(1, None, "a"), record(1, None, "b")
        assert store.read([ViewKeys(view, [keys[0], keys[1], keys[0], keys[0]])]) == [
            [a, b, a, a]]
        assert store.read([ViewKeys(view, [keys[1], keys[1]]),
                           ViewKeys(other, [keys[1]]),
                           ViewKeys(view, [keys[1]])]) == [[b, b], [None], [b]]

    # -- ordering -----------------------------------------------------------------------

    def test_newer_event_time_replaces_older(self, store: OnlineStore) -> None:
        view, key = new_view(), int_keys(1)
        assert store.write(view, key, [record(100, None, "old")]) == 1
        assert store.write(view, key, [record(101, None, "new")]) == 1
        assert store.read([ViewKeys(view, key)]) == [[record(101, None, "new")]]

    def test_older_event_time_never_replaces_newer(self, store: OnlineStore) -> None:
        view, key = new_view(), int_keys(1)
        store.write(view, key, [record(100, 0, "new")])
        assert store.write(view, key, [record(99, DAY_US, "old")]) == 0
        assert store.read([ViewKeys(view, key)]) == [[record(100, 0, "new")]]

    def test_a_newer_definition_replaces_and_an_older_one_never(self, store: OnlineStore
                                                                ) -> None:
        view, key = new_view(), int_keys(1)
        store.write(view, key, [record(100, 0, "old definition", 1)])
        assert store.write(view, key, [record(5, None, "new definition", 2)]) == 1
        assert store.read([ViewKeys(view, key)]) == [[record(5, None, "new definition", 2)]]
        assert store.write(view, key, [record(4, None, "older, same definition", 2)]) == 0
        # a writer still on the old definition never hides the new one, however late
        assert store.write(view, key, [record(10**12, None, "stale writer", 1)]) == 0
        assert store.read([ViewKeys(view, key)]) == [[record(5, None, "new definition", 2)]]

    def test_created_time_orders_equal_event_times(self, store: OnlineStore) -> None:
        view, key = new_view(), int_keys(1)
        store.write(view, key, [record(100, 5, "c5")])
        assert store.write(view, key, [record(100, 3, "c3")]) == 0
        assert store.write(view, key, [record(100, None, "no created")]) == 0
        assert store.read([ViewKeys(view, key)]) == [[record(100, 5, "c5")]]
        assert store.write(view, key, [record(100, 7, "c7")]) == 1
        assert store.read([ViewKeys(view, key)]) == [[record(100, 7, "c7")]]

    def test_times_before_1970_sort_below_later_times(self, store: OnlineStore) -> None:
        view, key = new_view(), int_keys(1)
        ladder = [-(2**62), -DAY_US, -2, -1, 0, 1, DAY_US, 2**62]
        for event in ladder:
            assert store.write(view, key, [record(event, None, event)]) == 1
        for event in ladder[:-1]:
            assert store.write(view, key, [record(event, DAY_US, "late")]) == 0
        assert store.read([ViewKeys(view, key)]) == [[record(2**62, None, 2**62)]]

        other = new_view()
        store.write(other, key, [record(1, None, "after 1970")])
        assert store.write(other, key, [record(-1, None, "before")]) == 0  # 0x7f.. < 0x80..
        assert store.read([ViewKeys(other, key)]) == [[record(1, None, "after 1970")]]

    def test_created_times_before_1970_sort_above_a_missing_one(
            self, store: OnlineStore) -> None:
        view, key = new_view(), int_keys(1)
        store.write(view, key, [record(0, None, "none")])
        assert store.write(view, key, [record(0, -DAY_US, "1969")]) == 1
        assert store.write(view, key, [record(0, -2 * DAY_US, "earlier")]) == 0
        assert store.read([ViewKeys(view, key)]) == [[record(0, -DAY_US, "1969")]]

    def test_equal_order_bytes_replace(self, store: OnlineStore) -> None:
        view, key = new_view(), int_keys(1)
        store.write(view, key, [record(100, 5, "first", generation=1)])
        # same generation and times, another payload: a later delivery wins the tie
        assert store.write(view, key, [record(100, 5, "second", generation=1)]) == 1
        assert store.read([ViewKeys(view, key)]) == [[record(100, 5, "second", generation=1)]]

    def test_mixed_batch_stores_only_records_not_older(self, store: OnlineStore) -> None:
        view, keys = new_view(), int_keys(12)
        store.write(view, keys, [record(5, None, "base")] * len(keys))
        events = [3, 8, 5, 4, 9, 5, 6, 1, 5, 7, 2, 10]
        batch = [record(e, None, f"e{e}") for e in events]
        assert store.write(view, keys, batch) == sum(e >= 5 for e in events)
        expected = [record(e, None, f"e{e}") if e >= 5 else record(5, None, "base")
                    for e in events]
        assert store.read([ViewKeys(view, keys)]) == [expected]

    def test_duplicate_keys_in_one_write_batch_apply_in_order(
            self, store: OnlineStore) -> None:
        view, (key,) = new_view(), int_keys(1)
        batch = [record(2, None, "a"), record(1, None, "older"), record(2, None, "b"),
                 record(0, None, "oldest")]
        assert store.write(view, [key] * 4, batch) == 2
        assert store.read([ViewKeys(view, [key])]) == [[record(2, None, "b")]]

    def test_big_batch_round_trip(self, store: OnlineStore) -> None:
        view, keys = new_view(), int_keys(20_000)
        records = [record(i, None, i) for i in range(len(keys))]
        assert store.write(view, keys, records) == len(keys)
        assert store.read([ViewKeys(view, keys)]) == [records]
        older = [record(i - 1, None, "older") for i in range(len(keys))]
        assert store.write(view, keys, older) == 0
        assert store.read([ViewKeys(view, keys[::-1])]) == [records[::-1]]

    # -- deletes, bytes, validation, instances ------------------------------------------

    def test_delete_view_removes_only_that_view(self, store: OnlineStore) -> None:
        view, other, keys = new_view(), new_view(), int_keys(50)
        store.write(view, keys, [record(1)] * 50)
        store.write(other, keys[:10], [record(2)] * 10)
        assert store.delete_view(view) == 50
        assert store.read([ViewKeys(view, keys), ViewKeys(other, keys[:10])]) == [
            [None] * 50, [record(2)] * 10]
        assert store.delete_view(view) == 0
        assert store.delete_view(new_view()) == 0
        assert store.write(view, keys[:1], [record(0)]) == 1  # a deleted view starts afresh
        assert store.read([ViewKeys(view, keys[:2])]) == [[record(0), None]]

    def test_keys_and_records_are_binary_safe(self, store: OnlineStore) -> None:
        view = new_view()
        top = 2**63 - 1  # a header of 0xFF bytes
        records = [record(top, top, b"\x00\xff" * i + bytes(range(256)), 0xFFFFFFFF)
                   for i in range(len(BINARY_KEYS))]
        records[0] = records[0] + b"\x00" * 3  # trailing NULs survive
        assert store.write(view, list(BINARY_KEYS), records) == len(BINARY_KEYS)
        assert store.read([ViewKeys(view, list(BINARY_KEYS))]) == [records]
        for key, value in zip(BINARY_KEYS, records, strict=True):
            assert store.read([ViewKeys(view, [key])]) == [[value]]

    def test_rejects_batches_it_cannot_order(self, store: OnlineStore) -> None:
        view, keys = new_view(), int_keys(2)
        with pytest.raises(DataError, match="2 keys but 1 records"):
            store.write(view, keys, [record(1)])
        with pytest.raises(DataError, match="encode_record"):
            store.write(view, keys, [record(1), b"\x80short"])
        assert store.read([ViewKeys(view, keys)]) == [[None, None]]

    def test_two_instances_share_records(self, online_store_factory: StoreFactory) -> None:
        first, second = online_store_factory(), online_store_factory()
        try:
            view, keys = new_view(), int_keys(3)
            first.write(view, keys, [record(1)] * 3)
            assert second.read([ViewKeys(view, keys)]) == [[record(1)] * 3]
            assert second.write(view, keys[:1], [record(2)]) == 1
            assert first.write(view, keys[:1], [record(1, None, "stale")]) == 0
            assert first.read([ViewKeys(view, keys[:1])]) == [[record(2)]]
            assert second.delete_view(view) == 3
            assert first.read([ViewKeys(view, keys)]) == [[None] * 3]
        finally:
            first.close()
            second.close()

    def test_ping(self, store: OnlineStore) -> None:
        store.ping()

    # -- random sequences against the model --------------------------------------------

    def test_write_sequences_match_the_model(self, online_store_factory: StoreFactory) -> None:
        instances = [online_store_factory(), online_store_factory()]
        item = st.tuples(st.sampled_from(BINARY_KEYS), EVENT_TIMES, CREATED_TIMES,
                         PAYLOADS, GENERATIONS)
        step = st.tuples(st.integers(0, 1), st.lists(item, max_size=6))

        @settings(max_examples=self.max_examples, deadline=None,
                  suppress_health_check=_SUPPRESS)
        @given(steps=st.lists(step, max_size=12))
        def check(steps: list[tuple[int, list[tuple[bytes, int, int | None, bytes, int]]]],
                  ) -> None:
            view, model = new_view(), Model()
            for which, items in steps:
                keys = [key for key, *_ in items]
                records = [record(e, c, p, fp) for _, e, c, p, fp in items]
                assert instances[which].write(view, keys, records) == model.write(keys, records)
            everything = [*BINARY_KEYS, b"unknown"]
            expected = [model.records.get(key) for key in everything]
            assert instances[0].read([ViewKeys(view, everything)]) == [expected]
            assert instances[1].read([ViewKeys(view, everything[::-1]),
                                      ViewKeys(view, everything[:1])]) == [
                expected[::-1], expected[:1]]

        try:
            check()
        finally:
            for instance in instances:
                instance.close()

    def test_threads_sharing_one_instance_end_with_the_max_record(
            self, store: OnlineStore) -> None:
        threads = 3

        @settings(max_examples=max(1, self.max_examples // 3), deadline=None,
                  suppress_health_check=_SUPPRESS)
        @given(writers=batches(threads))
        def check(writers: list[list[Batch]]) -> None:
            view = new_view()
            barrier = threading.Barrier(threads)
            passes = [0] * threads
            lock = threading.Lock()

            def run(writer: int) -> None:
                barrier.wait(BARRIER_TIMEOUT_S)
                write_passes(store, view, writers[writer], writer=writer, passes=passes,
                              lock=lock)

            with ThreadPoolExecutor(threads) as pool:
                futures = [pool.submit(run, writer) for writer in range(threads)]
                for future in futures:
                    future.result()  # re-raises a writer's error here
            _assert_state(store, view, expected_after_concurrent(writers))

        check()

    def test_processes_writing_at_once_end_with_the_max_record(
            self, online_store_factory: StoreFactory) -> None:
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(2)
        passes = ctx.Array("i", 2)
        reader = online_store_factory()
        with ProcessPoolExecutor(2, mp_context=ctx, initializer=init_writer_process,
                                 initargs=(barrier, passes)) as pool:

            @settings(max_examples=self.concurrent_examples, deadline=None,
                      suppress_health_check=_SUPPRESS)
            @given(writers=batches(2))
            def check(writers: list[list[Batch]]) -> None:
                view = new_view()
                passes[:] = [0, 0]
                futures = [pool.submit(write_in_process, online_store_factory, view,
                                       batches, writer)
                           for writer, batches in enumerate(writers)]
                for future in futures:
                    future.result()
                _assert_state(reader, view, expected_after_concurrent(writers))

            try:
                check()
            finally:
                reader.close()


def _assert_state(store: OnlineStore, view: str, expected: dict[bytes, bytes]) -> None:
    everything = [*BINARY_KEYS, b"unknown"]
    assert store.read([ViewKeys(view, everything)]) == [
        [expected.get(key) for key in everything]]

