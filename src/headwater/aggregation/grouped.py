"""Partial states of a batch of events: every aggregation, per (entity, tile), vectorized.

A batch of events (the table of ``headwater.materialize.tiles.apply_events``: the view's join
keys, ``__hw_ts``, ``__hw_created``, ``__hw_seq`` and the aggregated columns) is sorted once per
distinct granularity by (entity, tile start); each aggregator's ``encode_grouped`` then computes
the encoded state of every group with numpy. The groups of an entity are contiguous and in tile
order: :mod:`~headwater.aggregation.merge_batch` merges each lane's groups into the records of
all entities at once, and :attr:`Partials.by_key` gives each entity's partial as a slice of
those lists per lane (the layout of :mod:`headwater.aggregation.tiles`) for the per-record
path. Python works per entity at most, never per event or per group.
Merging, finalizing and encoding states is the algebra's one implementation
(:mod:`headwater.aggregation.base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from headwater.aggregation.batch import Order
from headwater.aggregation.tiles import NO_CREATED, LaneTiles, add_tiles, lanes
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
    when the event has none) and, per lane of the view's aggregations
    (:func:`~headwater.aggregation.tiles.lanes`), its tiles: ascending starts and each
    aggregation's encoded state per tile."""

    latest_us: int
    latest_created_us: int | None
    lanes: tuple[LaneTiles, ...]

    @classmethod
    def of(cls, latest_us: int, latest_created_us: int | None,
           tiles: Sequence[dict[int, Any]],
           aggregations: tuple[Aggregation, ...]) -> EntityPartial:
        """A partial from states by tile start, one dict per aggregation (a tile that
        another aggregation of the lane has and this one lacks gets the empty state)."""
        out = []
        for lane in lanes(aggregations):
            starts = sorted(set().union(*(tiles[p] for p in lane.positions)))
            out.append(LaneTiles(starts, tuple(
                [fn.encode(tiles[p].get(s, fn.init())) for s in starts]
                for p, fn in zip(lane.positions, lane.functions, strict=True))))
        return cls(latest_us, latest_created_us, tuple(out))

    def states(self, aggregations: tuple[Aggregation, ...], position: int) -> dict[int, Any]:
        """The decoded states of the aggregation at ``position``, by tile start."""
        for lane, tiles in zip(lanes(aggregations), self.lanes, strict=True):
            if position in lane.positions:
                slot = lane.positions.index(position)
                decode = lane.functions[slot].decode
                return {s: decode(d) for s, d in zip(tiles.starts, tiles.states[slot],
                                                      strict=True)}
        raise IndexError(position)


class LaneGroups(NamedTuple):
    """One lane's (entity, tile) groups of a batch, sorted by entity then tile start:
    ``entity`` and ``starts`` per group, per aggregation of the lane the encoded state of each
    group, and ``bounds``: entity ``e``'s groups are ``bounds[e]:bounds[e + 1]``."""

    entity: npt.NDArray[np.intp]
    starts: Ints
    states: tuple[list[bytes], ...]
    bounds: list[int]


@dataclass(frozen=True)
class Partials:
    """A batch's partial states. ``keys`` are the encoded entity keys; ``entity`` and ``ts``
    give each event's entity (an index into ``keys``) and time, for the caller's lateness
    accounting; ``latest_us`` and ``latest_created_us`` each entity's latest event
    (:data:`~headwater.aggregation.tiles.NO_CREATED` for no created time); ``lanes`` the
    groups of each lane. :attr:`by_key` gives the same per entity."""

    keys: list[bytes]
    entity: npt.NDArray[np.intp]
    ts: Ints
    latest_us: Ints
    latest_created_us: Ints
    lanes: tuple[LaneGroups, ...]

    @cached_property
    def by_key(self) -> dict[bytes, EntityPartial]:
        """Each entity's partial, by encoded key."""
        lanes = [(groups.starts.tolist(), groups.states, groups.bounds)
                 for groups in self.lanes]
        out: dict[bytes, EntityPartial] = {}
        for e, (key, latest, made) in enumerate(zip(
                self.keys, self.latest_us.tolist(), self.latest_created_us.tolist(),
                strict=True)):
            tiles = []
            for starts, states, bounds in lanes:
                lo, hi = bounds[e], bounds[e + 1]
                tiles.append(LaneTiles(starts[lo:hi], tuple([c[lo:hi] for c in states])))
            out[key] = EntityPartial(latest, None if made == NO_CREATED else made,
                                     tuple(tiles))
        return out


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
    layout = lanes(aggs)
    by_lane: dict[int, LaneGroups] = {}
    for granularity in dict.fromkeys(lane.granularity_us for lane in layout):
        start = tile_start(ts, granularity)
        order = np.lexsort((start, entity))
        sorted_entity, sorted_start = entity[order], start[order]
        boundary = np.ones(n, dtype=np.bool_)
        boundary[1:] = (sorted_entity[1:] != sorted_entity[:-1]) | (
            sorted_start[1:] != sorted_start[:-1])
        starts = np.flatnonzero(boundary)
        group_entity = sorted_entity[starts]
        group_start = sorted_start[starts]
        # each entity's groups: [bounds[e], bounds[e + 1])
        bounds = np.searchsorted(group_entity, np.arange(len(keys) + 1)).tolist()
        key = Order(ts[order], created[order], seq[order])
        taken = pa.array(order)
        values: dict[str, pa.Array] = {}
        for index, lane in enumerate(layout):
            if lane.granularity_us != granularity:
                continue
            encoded = []
            for position, fn in zip(lane.positions, lane.functions, strict=True):
                column = aggs[position].column
                if column not in values:
                    values[column] = _values(events.column(column)).take(taken)
                encoded.append(fn.encode_grouped(values[column], key, starts))
            by_lane[index] = LaneGroups(group_entity, group_start, tuple(encoded), bounds)
    latest, latest_created = _latest(len(keys), entity, ts, created)
    return Partials(keys, entity, ts, latest, latest_created,
                    tuple(by_lane[index] for index in range(len(layout))))


def _latest(entities: int, entity: npt.NDArray[np.intp], ts: Ints,
            created: Ints) -> tuple[Ints, Ints]:
    """Each entity's latest event ``(ts, created)``: the greatest pair."""
    latest = np.zeros(entities, dtype=np.int64)
    latest_created = np.full(entities, NO_CREATED, dtype=np.int64)
    if entities:
        order = np.lexsort((created, ts, entity))
        last = np.append(entity[order][1:] != entity[order][:-1], True)
        best = order[last]
        latest[entity[best]] = ts[best]
        latest_created[entity[best]] = created[best]
    return latest, latest_created


def combine(a: EntityPartial, b: EntityPartial,
            aggregations: tuple[Aggregation, ...]) -> EntityPartial:
    """The partial of both batches (one entity's events, split over two batches)."""
    key_a = (a.latest_us, NO_CREATED if a.latest_created_us is None else a.latest_created_us)
    key_b = (b.latest_us, NO_CREATED if b.latest_created_us is None else b.latest_created_us)
    latest = b if key_b > key_a else a
    out = []
    for lane, mine, theirs in zip(lanes(aggregations), a.lanes, b.lanes, strict=True):
        starts = list(mine.starts)
        states = [list(column) for column in mine.states]
        add_tiles(lane, starts, states, theirs, -(2**63))
        out.append(LaneTiles(starts, tuple(states)))
    return EntityPartial(latest.latest_us, latest.latest_created_us, tuple(out))
