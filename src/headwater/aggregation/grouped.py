"""Partial states of a batch of events: every aggregation, per (entity, tile), vectorized.

A batch of events (the table of ``headwater.materialize.tiles.apply_events``: the view's join
keys, ``__hw_ts``, ``__hw_created``, ``__hw_seq`` and the aggregated columns) is sorted once per
distinct granularity by (entity, tile start); each aggregator's ``update_grouped`` then computes
the state of every group with numpy. Python works per entity and per group only to build the
state objects and the dicts that hold them, never per event. Merging, finalizing and encoding
those states is the algebra's one implementation (:mod:`headwater.aggregation.base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from headwater.aggregation.base import FUNCTIONS
from headwater.aggregation.batch import Order
from headwater.aggregation.tiles import NO_CREATED
from headwater.aggregation.windows import tile_start
from headwater.definitions import FeatureView
from headwater.definitions.aggregation import Aggregation
from headwater.errors import DataError
from headwater.offline.base import EVENT_SEQ, LATEST_CREATED, LATEST_TS
from headwater.online.encoding import encode_keys

TS = LATEST_TS
CREATED = LATEST_CREATED
SEQ = EVENT_SEQ

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class EntityPartial:
    """What a batch adds to one entity: its latest event ``(ts, created)`` (created is None
    when the event has none) and, per aggregation of the view, the state of each tile by
    tile start."""

    latest_us: int
    latest_created_us: int | None
    tiles: tuple[dict[int, Any], ...]


@dataclass(frozen=True)
class Partials:
    """A batch's partial states, by encoded entity key. ``entity`` and ``ts`` give each event's
    entity (an index into ``keys``) and time, for the caller's lateness accounting."""

    keys: list[bytes]
    by_key: dict[bytes, EntityPartial]
    entity: npt.NDArray[np.intp]
    ts: Ints


def _micros(column: pa.ChunkedArray, name: str, view: str) -> Ints:
    if column.null_count:
        raise DataError(f"events of feature view '{view}': column '{name}' has "
                        f"{column.null_count} nulls. Fix: give every event a value")
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(column.to_numpy(), dtype=np.int64)


def _entities(view: FeatureView, events: pa.Table) -> tuple[npt.NDArray[np.intp], list[bytes]]:
    """Each event's entity index and the encoded key of each entity (first-seen rows)."""
    code = np.zeros(events.num_rows, dtype=np.int64)
    for name in view.join_keys:
        column = events.column(name)
        if column.null_count:
            raise DataError(f"events of feature view '{view.name}': join key '{name}' has "
                            f"{column.null_count} nulls. Fix: give every event its keys")
        values = column.to_numpy()
        _, inverse = np.unique(values, return_inverse=True)
        width = int(inverse.max()) + 1 if inverse.shape[0] else 1
        _, combined = np.unique(code * width + inverse.reshape(-1), return_inverse=True)
        code = combined.reshape(-1).astype(np.int64)
    _, first, entity = np.unique(code, return_index=True, return_inverse=True)
    columns = [events.column(name).take(pa.array(first)).to_pylist() for name in view.join_keys]
    return entity.reshape(-1).astype(np.intp), encode_keys(view.join_keys, columns)


def _values(column: pa.ChunkedArray) -> pa.Array:
    """A column as the algebra takes it: timestamps as int64 microseconds, floats as float64."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_timestamp(array.type):
        return array.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    if pa.types.is_floating(array.type) and array.type != pa.float64():
        return array.cast(pa.float64())
    return array


def check_events(view: FeatureView, events: pa.Table) -> None:
    """Raise DataError naming a column the events table lacks."""
    needed = [*view.join_keys, TS, CREATED, SEQ, *dict.fromkeys(a.column for a in
                                                                 view.aggregations)]
    names = set(events.column_names)
    for name in needed:
        if name not in names:
            raise DataError(
                f"events of feature view '{view.name}' have no column '{name}'. Fix: pass the "
                f"view's join keys, {TS}, {CREATED}, {SEQ} and its aggregated columns")


def partials(view: FeatureView, events: pa.Table) -> Partials:
    """The state of every aggregation of ``view`` for every (entity, tile) of ``events``."""
    check_events(view, events)
    n = events.num_rows
    entity, keys = _entities(view, events)
    ts = _micros(events.column(TS), TS, view.name)
    seq = _micros(events.column(SEQ), SEQ, view.name)
    created_col = events.column(CREATED)
    created = np.asarray(
        pc.fill_null(created_col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()),
                     NO_CREATED).to_numpy(), dtype=np.int64) if n else np.zeros(0, np.int64)
    aggs = view.aggregations
    tiles: list[list[dict[int, Any]]] = [[{} for _ in aggs] for _ in keys]
    for granularity in dict.fromkeys(a.granularity_us for a in aggs):
        start = tile_start(ts, granularity)
        order = np.lexsort((start, entity))
        sorted_entity, sorted_start = entity[order], start[order]
        boundary = np.ones(n, dtype=np.bool_)
        boundary[1:] = (sorted_entity[1:] != sorted_entity[:-1]) | (
            sorted_start[1:] != sorted_start[:-1])
        starts = np.flatnonzero(boundary)
        group_entity = sorted_entity[starts].tolist()
        group_start = sorted_start[starts].tolist()
        key = Order(ts[order], created[order], seq[order])
        taken = pa.array(order)
        for position, agg in enumerate(aggs):
            if agg.granularity_us != granularity:
                continue
            values = _values(events.column(agg.column)).take(taken)
            states = FUNCTIONS[agg.function].update_grouped(values, key, starts)
            for e, s, state in zip(group_entity, group_start, states, strict=True):
                tiles[e][position][s] = state
    return Partials(keys, _by_key(keys, entity, ts, created, tiles), entity, ts)


def _by_key(keys: list[bytes], entity: npt.NDArray[np.intp], ts: Ints, created: Ints,
            tiles: list[list[dict[int, Any]]]) -> dict[bytes, EntityPartial]:
    """Each entity's partial with its latest event: the greatest ``(ts, created)``."""
    if not keys:
        return {}
    order = np.lexsort((created, ts, entity))
    last = np.append(entity[order][1:] != entity[order][:-1], True)
    best = order[last]
    out: dict[bytes, EntityPartial] = {}
    for e, latest, made in zip(entity[best].tolist(), ts[best].tolist(),
                               created[best].tolist(), strict=True):
        out[keys[e]] = EntityPartial(latest, None if made == NO_CREATED else made,
                                     tuple(tiles[e]))
    return out


def combine(a: EntityPartial, b: EntityPartial,
            aggregations: Sequence[Aggregation]) -> EntityPartial:
    """The partial of both batches (one entity's events, split over two batches)."""
    key_a = (a.latest_us, NO_CREATED if a.latest_created_us is None else a.latest_created_us)
    key_b = (b.latest_us, NO_CREATED if b.latest_created_us is None else b.latest_created_us)
    latest = b if key_b > key_a else a
    tiles = []
    for agg, mine, theirs in zip(aggregations, a.tiles, b.tiles, strict=True):
        merge = FUNCTIONS[agg.function].merge
        out = dict(mine)
        for start, state in theirs.items():
            old = out.get(start)
            out[start] = state if old is None else merge(old, state)
        tiles.append(out)
    return EntityPartial(latest.latest_us, latest.latest_created_us, tuple(tiles))
