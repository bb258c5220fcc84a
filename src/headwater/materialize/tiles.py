"""Events -> online tile records of aggregated views: the one path that streaming, push and
materialization use.

:func:`apply_events` merges a batch of events into the entities' tile records in one online
store transaction (:meth:`~headwater.online.base.OnlineStore.update`), exactly once: the
events whose id is already marked under ``scope`` are skipped, the others merged, and their ids
(and any extra ``markers``) marked in the same transaction. Re-applying a batch after a crash
before the stream's acknowledgement therefore changes nothing. This module is the only place
that decides which events count; the stores only make the read-modify-write atomic.

:func:`materialize_tiles` rebuilds the records from the offline events (which hold every pushed
and streamed event too): every event a read at or after ``end`` can need, per entity, replacing
the stored record. See :mod:`headwater.aggregation.tiles` for the record, pruning, allowed
lateness and reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureView
from headwater.errors import DataError, DefinitionError
from headwater.online.base import OnlineStore
from headwater.online.encoding import decode_header
from headwater.types import EPOCH, to_micros

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

    from headwater.aggregation.grouped import EntityPartial, Partials
    from headwater.materialize.job import MaterializeResult, Progress
    from headwater.offline.base import OfflineEngine

WRITE_BATCH = 5_000
"""Entities per online transaction when materializing."""
PARTIAL_ROWS = 500_000
"""Offline events summarised at once when materializing (bounds the memory they take)."""


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply_events` did: ``applied`` events merged (not marked before),
    ``duplicates`` skipped (already marked under the scope, or an id repeated in the batch),
    ``records`` entity records stored, and ``late`` the applied events older than every
    aggregation's allowed lateness, which changed nothing. ``marked`` are the ids that were
    already marked when the transaction ran."""

    applied: int
    duplicates: int
    records: int
    late: int = 0
    marked: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ViewBatch:
    """A batch of events of one aggregated view made ready for :func:`apply_events`
    (:func:`view_batch`): which events come first by id (an id repeated in the batch counts
    once), and the partial states of those, per entity and tile."""

    first: npt.NDArray[np.bool_]
    whole: Partials


def view_batch(view: FeatureView, events: pa.Table, ids: Sequence[str] | None) -> ViewBatch:
    """The :class:`ViewBatch` of ``events`` (as :func:`apply_events` takes them). Depends
    on nothing stored, so a consumer computes it ahead, while the batch before is applied."""
    import numpy as np

    from headwater.aggregation.grouped import check_events, partials

    _aggregated(view, "view_batch")
    check_events(view, events)
    n = events.num_rows
    if ids is not None and len(ids) != n:
        raise DataError(f"apply_events to feature view '{view.name}': {len(ids)} ids for {n} "
                        "events. Fix: pass one id per event, or none")
    first = np.ones(n, dtype=np.bool_)
    if ids is not None and n:
        _, where = np.unique(np.asarray(ids, dtype=object).astype(str), return_index=True)
        first[:] = False
        first[where] = True  # an id repeated in the batch counts once
    return ViewBatch(first, partials(view, events.filter(first) if not first.all() else events))


def _aggregated(view: FeatureView, caller: str) -> None:
    if not view.is_aggregated:
        raise DefinitionError(f"FeatureView '{view.name}'", "aggregations",
                              f"{caller} needs a view with aggregations",
                              "write latest-value views with the online store's write")


def apply_events(online: OnlineStore, view: FeatureView, generation: int, events: pa.Table,
                 *, scope: str | None = None, ids: Sequence[str] | None = None,
                 markers: Sequence[str] = (),
                 before_commit: Callable[[], object] | None = None,
                 batch: ViewBatch | None = None, likely_unmarked: bool = False
                 ) -> ApplyResult:
    """Merge ``events`` into the tile records of ``view`` (definition ``generation``) in
    one online transaction, skipping the events whose ``ids[i]`` is marked under ``scope``
    and marking the rest, with ``markers``, under ``scope``. ``before_commit`` is called
    in the transaction after the merge, before anything is written (it may raise: then
    nothing is). ``batch``: :func:`view_batch` of these events and ids, when computed
    already. ``likely_unmarked``: see :meth:`~headwater.online.base.OnlineStore.update`.

    ``events`` has the view's join keys, ``__hw_ts``, ``__hw_created`` (may be null),
    ``__hw_seq`` (unique, in offline ingestion order) and the aggregated columns."""
    return send_events(online, view, generation, events, scope=scope, ids=ids,
                       markers=markers, before_commit=before_commit, batch=batch,
                       likely_unmarked=likely_unmarked)()


def send_events(online: OnlineStore, view: FeatureView, generation: int, events: pa.Table,
                *, scope: str | None = None, ids: Sequence[str] | None = None,
                markers: Sequence[str] = (),
                before_commit: Callable[[], object] | None = None,
                batch: ViewBatch | None = None, likely_unmarked: bool = False,
                defer: bool = False,
                on_marked: Callable[[frozenset[str]], object] | None = None
                ) -> Callable[[], ApplyResult]:
    """:func:`apply_events`, returning the function that gives its result. With ``defer``
    the online update is deferred (:meth:`~headwater.online.base.OnlineStore.update`):
    call the function only after ``online.settle`` confirmed it, since a commit run again
    merges again and may find other ids marked. ``on_marked`` is called with the ids found
    marked each time the update is about to commit (after ``before_commit``), so what is
    committed along with it can leave them out first."""
    import numpy as np

    from headwater.aggregation.grouped import partials

    if batch is None:
        batch = view_batch(view, events, ids)
    first, whole = batch.first, batch.whole
    n = events.num_rows
    outcome: dict[str, int] = {}
    outcome_marked: set[str] = set()

    def modify(marked: set[str], current: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
        fresh = first
        if marked and ids is not None:
            fresh = first & np.fromiter((i not in marked for i in ids), np.bool_, n)
        part = whole if fresh is first else partials(view, events.filter(fresh))
        records, late = _merge(view, generation, part, current)
        applied = int(np.count_nonzero(fresh))
        outcome.update(applied=applied, duplicates=n - applied, records=len(records),
                       late=late)
        outcome_marked.clear()  # of an earlier run, when the update runs again
        outcome_marked.update(i for i in ids or () if i in marked)
        if before_commit is not None:
            before_commit()
        if on_marked is not None:
            on_marked(frozenset(outcome_marked))
        return records

    online.update(view.name, whole.keys, modify, scope=scope, ids=list(ids or ()),
                  markers=markers, likely_unmarked=likely_unmarked, defer=defer)
    return lambda: ApplyResult(**outcome, marked=frozenset(outcome_marked))


def _merge(view: FeatureView, generation: int, part: Any,
           current: dict[bytes, bytes | None]) -> tuple[dict[bytes, bytes], int]:
    """The new records of the entities of ``part`` and how many of its events were late.
    A record of another definition generation is left alone: a newer one, and an older one
    too, since events alone cannot rebuild its window. It reads MISSING until materialize
    rebuilds it from the offline copy, which holds these events."""
    from headwater.aggregation.merge_batch import merge_records
    from headwater.aggregation.tiles import late_events

    records, latest = merge_records(view.aggregations, generation, part, current, view.name)
    return records, late_events(view.aggregations, latest, part.entity, part.ts)


def events_start(view: FeatureView, end: datetime) -> datetime:
    """The earliest event time a read at or after ``end`` can need: the least
    ``floor_h(end - W)`` over the view's aggregations."""
    from headwater.aggregation.tiles import cutoff

    end_us = to_micros(end)
    return EPOCH + timedelta(microseconds=min(cutoff(agg, end_us) for agg in view.aggregations))


def materialize_tiles(offline: OfflineEngine, online: OnlineStore, view: FeatureView,
                      generation: int, end: datetime, *,
                      progress: Progress | None = None) -> MaterializeResult:
    """Rebuild, from the offline events, the tile record of every entity that has events
    with ``events_start(view, end) <= ts``, replacing the stored one (a record of a newer
    definition generation is left alone). Per tile size, the tiles up to and including the
    one holding ``end`` come from offline (that tile whole, so events streamed into it after
    ``end`` are kept: their offline copy is written before their online effect); tiles after
    it that the stored record holds (streamed meanwhile) are kept. Entities are written
    ``WRITE_BATCH`` per transaction. Run it before a view's stream consumers start, or on an
    ``end`` behind the events being streamed: an event whose offline file is still pending
    while it runs is not in the rebuilt tiles."""
    from headwater.aggregation.grouped import combine, partials
    from headwater.materialize.job import MaterializeResult

    _aggregated(view, "materialize_tiles")
    began = time.perf_counter()
    start = events_start(view, end)
    aggs = view.aggregations
    found: dict[bytes, EntityPartial] = {}

    def add(batches: list[pa.RecordBatch]) -> None:
        import pyarrow as pa

        for key, part in partials(view, pa.Table.from_batches(batches)).by_key.items():
            old = found.get(key)
            found[key] = part if old is None else combine(old, part, aggs)

    # the reader's batches are gathered up to PARTIAL_ROWS: partials cost per entity too
    pending: list[pa.RecordBatch] = []
    rows_pending = 0
    # the tile holding ``end`` is rebuilt whole (per tile size), so events streamed into it
    # after ``end`` are not lost; tiles after it are the stored record's
    from headwater.aggregation.tiles import tile_end

    until = EPOCH + timedelta(microseconds=max(tile_end(agg, to_micros(end))
                                               for agg in aggs))
    for batch in offline.read_events(view, start, until):
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows_pending += batch.num_rows
        if rows_pending >= PARTIAL_ROWS:
            add(pending)
            pending, rows_pending = [], 0
    if pending:
        add(pending)
    keys = list(found)
    rows = 0
    for lo in range(0, len(keys), WRITE_BATCH):
        chunk = keys[lo:lo + WRITE_BATCH]
        stored = online.update(view.name, chunk, _rebuild(view, generation, found,
                                                          to_micros(end)))
        rows += stored
        if progress is not None:
            progress(view.name, stored)
    return MaterializeResult(view.name, start, end, rows, time.perf_counter() - began)


def _rebuild(view: FeatureView, generation: int, found: dict[bytes, EntityPartial],
             end_us: int) -> Callable[[set[str], dict[bytes, bytes | None]], dict[bytes, bytes]]:
    """The ``modify`` of a materialization transaction: each entity's record from offline
    alone, plus the stored tiles that start at or after ``end``."""
    from headwater.aggregation.tiles import (
        decode_tiles,
        encode_tiles,
        followed_by,
        merge_into,
        split,
    )

    aggs = view.aggregations

    def modify(marked: set[str], current: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        for key, data in current.items():
            stored_generation = None if data is None else decode_header(data)[0]
            if stored_generation is not None and stored_generation > generation:
                continue
            rebuilt = merge_into(None, found[key], aggs, generation)
            if rebuilt is None:
                continue
            rebuilt = split(rebuilt, aggs, end_us, after=False)
            if data is not None and stored_generation == generation:
                stored = decode_tiles(data, len(aggs), view.name)
                if stored.latest_us >= end_us:  # streamed meanwhile: keep the later tiles
                    rebuilt = followed_by(rebuilt, split(stored, aggs, end_us, after=True),
                                          aggs)
            out[key] = encode_tiles(rebuilt)
        return out

    return modify
