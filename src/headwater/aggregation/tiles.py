"""Tile records: the online record of one (aggregated feature view, entity).

A record is the standard 20-byte header of :mod:`headwater.online.encoding` (the view's
definition generation, the event time of the latest event the record holds, and that event's
created time), then the tiles in *lanes*. The aggregations of a view with the same window and
tile size always hold the same tiles, so they share a lane: lanes come in the order of their
first aggregation in the definition, and a lane holds its tile starts in microseconds,
ascending, and for each of its aggregations, in definition order, the aggregator ``encode`` of
each tile's state, in the order of the starts. The same tiles always give the same bytes.

The layout after the header (format 1, little endian) keeps each lane's tiles as fixed-width
rows wherever the states are fixed-width, so the records of a batch of entities are read and
written with numpy, a slice per record rather than an object per tile
(:mod:`~headwater.aggregation.merge_batch`)::

    0xC1 (a byte msgpack never uses) | format (1) | lanes (u8)
    per lane:  aggregations k (u8) | tiles n (u32) | k widths (u32): each aggregation's
               state width, 0 when its states differ in width (or there are none); then
      every width > 0: n rows, each the tile start (int64) and its k states;
      else:            n starts (int64), then per aggregation its n states (width > 0), or
                       its n state lengths (u32) and the states back to back (width 0)

Records of the earlier layout (a msgpack array of ``[starts, states...]`` lanes right after the
header) are still read; every write uses the current one.

Merging a batch's partial states into a record (:func:`merge_into`) merges tile by tile with the
algebra's ``merge``, then *prunes*: with ``L`` the record's latest event, a read at ``t >= L``
merges, per aggregation of window ``W`` and tile size ``h``, the tiles from ``floor_h(t - W)``
on, so tiles starting before ``floor_h(L - W)`` can never be read again and are dropped. The
tiles are kept sorted, so pruning is a bisection and a slice, and a merge decodes and encodes
only the tiles the batch touches: the others keep their bytes.

**Allowed lateness.** An event arriving after later ones still counts when its tile is within
the window of the record's latest event, ``tile start >= floor_h(L - W)`` (so for at least
``W - h`` behind the latest event). An older event cannot change any read at or after ``L`` and
is dropped for that aggregation; one dropped by every aggregation is counted as *late* by
:func:`late_events`. Reads at times before ``L`` are not guaranteed: serving reads at ``now``.

**Reading** (:func:`values_at`): the value at ``t`` merges the tiles whose start ``s`` has
``floor_h(t - W) <= s < t``: the full tiles of the window and the head tile
``[floor_h(t), ...)``. The window's head is ``[floor_h(t), t)``, but a stored head tile holds
all of its events: under the consistency law every delivered event has ``ts < t``, and the
value is exact; serving in real time reads at ``t = now``, so an event with a time after
``now`` (a clock ahead of ours) in the head tile counts already. A tile starting at or after
``t`` is never read.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack
import numpy as np
import numpy.typing as npt

from headwater.aggregation.base import FUNCTIONS, Aggregator
from headwater.aggregation.packed import items
from headwater.aggregation.windows import tile_start
from headwater.definitions.aggregation import Aggregation
from headwater.errors import DataError
from headwater.online.encoding import HEADER_BYTES, decode_header, encode_header

if TYPE_CHECKING:
    from headwater.aggregation.grouped import EntityPartial

_unpackb = msgpack.unpackb

NO_CREATED = -(2**63)
"""The created time of an event without one: it sorts below every created time."""


class LaneTiles(NamedTuple):
    """The tiles of one lane: ascending ``starts`` and, per aggregation of the lane, the
    encoded state of each tile (``states[i][j]`` is aggregation i's state of tile j)."""

    starts: list[int]
    states: tuple[list[bytes], ...]


@dataclass(frozen=True)
class TileRecord:
    """A decoded tile record: its header fields and the tiles of each lane."""

    generation: int
    latest_us: int
    created_us: int | None
    lanes: tuple[LaneTiles, ...]


class Spec(NamedTuple):
    """What tile arithmetic needs of one aggregation, resolved once."""

    function: Aggregator[Any]
    window_us: int
    granularity_us: int


class Lane(NamedTuple):
    """Aggregations with one window and tile size: ``positions`` in the definition and
    their ``functions``."""

    window_us: int
    granularity_us: int
    positions: tuple[int, ...]
    functions: tuple[Aggregator[Any], ...]


@lru_cache(maxsize=256)
def specs(aggregations: tuple[Aggregation, ...]) -> tuple[Spec, ...]:
    """The resolved function, window and tile size of each aggregation (cached)."""
    return tuple(Spec(FUNCTIONS[a.function], a.window_us, a.granularity_us)
                 for a in aggregations)


_SEEN: dict[int, tuple[tuple[Aggregation, ...], tuple[Lane, ...],
                        tuple[tuple[int, int], ...]]] = {}


def _layout(aggregations: tuple[Aggregation, ...]) -> tuple[
        tuple[Lane, ...], tuple[tuple[int, int], ...]]:
    """:func:`lanes` and :func:`_slots`, found by the identity of the tuple first (hashing
    the aggregations costs more than a merge of a record's new tiles)."""
    seen = _SEEN.get(id(aggregations))
    if seen is not None and seen[0] is aggregations:
        return seen[1], seen[2]
    if len(_SEEN) >= 256:
        _SEEN.clear()
    layout, slots = _lanes(aggregations), _slots(aggregations)
    _SEEN[id(aggregations)] = (aggregations, layout, slots)  # holds the tuple: ids stay unique
    return layout, slots


def lanes(aggregations: tuple[Aggregation, ...]) -> tuple[Lane, ...]:
    """The lanes of a view's aggregations, in the order of their first aggregation."""
    return _layout(aggregations)[0]


@lru_cache(maxsize=256)
def _lanes(aggregations: tuple[Aggregation, ...]) -> tuple[Lane, ...]:
    found: dict[tuple[int, int], list[int]] = {}
    for position, agg in enumerate(aggregations):
        found.setdefault((agg.window_us, agg.granularity_us), []).append(position)
    return tuple(Lane(window, h, tuple(positions),
                      tuple(FUNCTIONS[aggregations[p].function] for p in positions))
                 for (window, h), positions in found.items())


@lru_cache(maxsize=256)
def _slots(aggregations: tuple[Aggregation, ...]) -> tuple[tuple[int, int], ...]:
    """Per aggregation, its lane and its index among the lane's aggregations."""
    where: dict[int, tuple[int, int]] = {}
    for index, lane in enumerate(_lanes(aggregations)):
        for slot, position in enumerate(lane.positions):
            where[position] = (index, slot)
    return tuple(where[p] for p in range(len(aggregations)))


def tiles_of(record: TileRecord, aggregations: tuple[Aggregation, ...],
             position: int) -> dict[int, bytes]:
    """The encoded tile states of the aggregation at ``position``, by tile start."""
    index, slot = _layout(aggregations)[1][position]
    lane = record.lanes[index]
    return dict(zip(lane.starts, lane.states[slot], strict=True))


FORMAT = b"\xc1\x01"
"""What follows the header of a record in the current layout: a byte msgpack never uses,
then the layout's version."""
LANE = struct.Struct("<BI")
"""A lane's number of aggregations and of tiles."""


@lru_cache(maxsize=256)
def row_type(widths: tuple[int, ...]) -> np.dtype[np.void]:
    """The numpy type of a lane's rows: ``start`` (int64) then ``s0``, ``s1``... of the
    states' widths, packed."""
    return np.dtype([("start", "<i8"), *((f"s{i}", f"V{w}") for i, w in enumerate(widths))])


def widths_of(widths: Sequence[int]) -> bytes:
    """The stored widths of a lane's states."""
    return struct.pack(f"<{len(widths)}I", *widths)


def encode_tiles(record: TileRecord) -> bytes:
    """The stored bytes of a tile record (deterministic: tiles in start order)."""
    parts = [encode_header(record.latest_us, record.created_us, record.generation), FORMAT,
             bytes((len(record.lanes),))]
    parts.extend(pack_lane(lane.starts, lane.states) for lane in record.lanes)
    return b"".join(parts)


def _width(states: Sequence[bytes]) -> int:
    """The width of every state, or 0 when they differ (or there are none)."""
    found = set(map(len, states))
    return found.pop() if len(found) == 1 else 0


def pack_lane(starts: Sequence[int], states: Sequence[Sequence[bytes]]) -> bytes:
    """One lane as the layout stores it (module docstring)."""
    n = len(starts)
    widths = [_width(column) for column in states]
    head = LANE.pack(len(states), n) + widths_of(widths)
    if n and all(widths):
        rows = np.empty(n, dtype=row_type(tuple(widths)))
        rows["start"] = starts
        for i, (width, column) in enumerate(zip(widths, states, strict=True)):
            rows[f"s{i}"] = np.frombuffer(b"".join(column), dtype=f"V{width}")
        return head + rows.tobytes()
    parts = [head, np.asarray(starts, dtype="<i8").tobytes()]
    for width, column in zip(widths, states, strict=True):
        if not width:
            parts.append(np.fromiter(map(len, column), dtype="<u4", count=n).tobytes())
        parts.append(b"".join(column))
    return b"".join(parts)


def decode_tiles(data: bytes, aggregations: int, view: str = "") -> TileRecord:
    """A stored tile record of a view with ``aggregations`` aggregations."""
    generation, latest, created = decode_header(data)
    if data[HEADER_BYTES:HEADER_BYTES + 1] == FORMAT[:1]:
        found = _decode_lanes(data, view)
    else:
        found = _decode_msgpack(data, view)
    held = sum(len(lane.states) for lane in found)
    if held != aggregations:
        raise _corrupt(view, f"expected {aggregations} tile lists, found {held}")
    return TileRecord(generation, latest, created, tuple(found))


def _decode_lanes(data: bytes, view: str) -> list[LaneTiles]:
    """The lanes of a record in the current layout (module docstring)."""
    if data[HEADER_BYTES:HEADER_BYTES + 2] != FORMAT:
        raise _corrupt(view, f"unknown layout {data[HEADER_BYTES + 1:HEADER_BYTES + 2]!r}")
    out = []
    try:
        pos = HEADER_BYTES + len(FORMAT) + 1
        for _ in range(data[pos - 1]):
            lane, pos = _unpack_lane(data, pos)
            out.append(lane)
    except (ValueError, IndexError, struct.error) as exc:
        raise _corrupt(view, f"truncated ({exc})") from exc
    if pos != len(data):
        raise _corrupt(view, f"{len(data) - pos} bytes after the last lane")
    return out


def _unpack_lane(data: bytes, pos: int) -> tuple[LaneTiles, int]:
    """The lane :func:`pack_lane` stored at ``pos``, and the position after it."""
    count, n = LANE.unpack_from(data, pos)
    pos += LANE.size
    widths = struct.unpack_from(f"<{count}I", data, pos)
    pos += 4 * count
    if n and all(widths):
        kind = row_type(widths)
        rows = np.frombuffer(data, dtype=kind, count=n, offset=pos)
        return LaneTiles(rows["start"].tolist(), tuple(
            rows[f"s{i}"].tolist() for i in range(count))), pos + n * kind.itemsize
    starts: list[int] = np.frombuffer(data, "<i8", n, pos).tolist()
    pos += 8 * n
    states = []
    for width in widths:
        if width:
            end = pos + n * width
            if end > len(data):
                raise ValueError("states past the end")
            states.append(items(data[pos:end], width))
            pos = end
            continue
        if not n:  # a lane whose tiles were all pruned
            states.append([])
            continue
        lengths = np.frombuffer(data, "<u4", n, pos).astype(np.int64)
        pos += 4 * n
        ends = (pos + np.cumsum(lengths)).tolist()
        if ends[-1] > len(data):
            raise ValueError("states past the end")
        states.append([data[a:b] for a, b in zip([pos, *ends[:-1]], ends, strict=True)])
        pos = ends[-1]
    return LaneTiles(starts, tuple(states)), pos


def _decode_msgpack(data: bytes, view: str) -> list[LaneTiles]:
    """The lanes of a record in the earlier layout: a msgpack array of
    ``[starts, states_1, ...]`` lanes."""
    try:
        payload = _unpackb(data[HEADER_BYTES:])
    except (ValueError, msgpack.UnpackException) as exc:
        raise _corrupt(view, str(exc)) from exc
    if not isinstance(payload, list):
        raise _corrupt(view, "expected an array of lanes")
    out = []
    for lane in payload:
        if not isinstance(lane, list) or len(lane) < 2:
            raise _corrupt(view, "expected each lane as [starts, states, ...]")
        starts = lane[0]
        size = len(starts)
        for states in lane[1:]:
            if len(states) != size:
                raise _corrupt(view, "a lane has more tile states than tile starts")
        out.append(LaneTiles(starts, tuple(lane[1:])))
    return out


def _corrupt(view: str, problem: str) -> DataError:
    return DataError(f"the online tile record of feature view '{view}' is corrupt ({problem}). "
                     "Fix: materialize the view again to rebuild its records")


def cutoff(aggregation: Aggregation | Spec | Lane, latest_us: int) -> int:
    """The first tile start any read at or after ``latest_us`` merges: ``floor_h(L - W)``."""
    h = aggregation.granularity_us
    return (latest_us - aggregation.window_us) // h * h


def merge_into(stored: TileRecord | None, partial: EntityPartial,
               aggregations: tuple[Aggregation, ...], generation: int) -> TileRecord | None:
    """The record after adding ``partial`` to ``stored`` (None: no record yet), pruned.

    A stored record of an older definition generation is discarded and rebuilt from the
    partial; one of a newer generation is never overwritten: the result is None and the
    caller leaves it in place (as the online ``write`` skips older records). Only the tiles
    ``partial`` touches are decoded and encoded; ``stored`` is left unchanged."""
    record = stored
    if record is not None:
        if record.generation > generation:
            return None
        if record.generation < generation:
            record = None
    layout = lanes(aggregations)
    if record is None:
        latest, created = partial.latest_us, partial.latest_created_us
    else:
        _check_layout(record, layout)
        latest, created = record.latest_us, record.created_us
        if _order(partial.latest_us, partial.latest_created_us) > _order(latest, created):
            latest, created = partial.latest_us, partial.latest_created_us
    merged: list[LaneTiles] = []
    for index, lane in enumerate(layout):
        h = lane.granularity_us
        first = (latest - lane.window_us) // h * h
        if record is None:
            starts: list[int] = []
            states: list[list[bytes]] = [[] for _ in lane.positions]
        else:
            old = record.lanes[index]
            cut = bisect_left(old.starts, first)
            starts = old.starts[cut:]
            states = [column[cut:] for column in old.states]
        add_tiles(lane, starts, states, partial.lanes[index], first)
        merged.append(LaneTiles(starts, tuple(states)))
    generation = generation if record is None else record.generation
    return TileRecord(generation, latest, created, tuple(merged))


def add_tiles(lane: Lane, starts: list[int], states: list[list[bytes]], new: LaneTiles,
              first: int) -> None:
    """Merge the lane's ``new`` tiles from ``first`` on into the sorted ``starts`` and
    ``states``, in place: appended when they all start after the stored ones (the usual
    case: a batch of newer events), else tile by tile."""
    fresh = new.starts
    cut = bisect_left(fresh, first) if fresh and fresh[0] < first else 0
    # older tiles than first: later than the allowed lateness, no read can need them
    if cut == len(fresh):
        return
    if not starts or fresh[cut] > starts[-1]:
        starts.extend(fresh[cut:] if cut else fresh)
        for column, added in zip(states, new.states, strict=True):
            column.extend(added[cut:] if cut else added)
        return
    functions = lane.functions
    for j in range(cut, len(fresh)):
        start = fresh[j]
        if start > starts[-1]:
            at, found = len(starts), False
        else:
            at = bisect_left(starts, start)
            found = starts[at] == start
        if found:
            for fn, column, added in zip(functions, states, new.states, strict=True):
                column[at] = fn.encode(fn.merge(fn.decode(column[at]), fn.decode(added[j])))
        else:
            starts.insert(at, start)
            for column, added in zip(states, new.states, strict=True):
                column.insert(at, added[j])


def _check_layout(record: TileRecord, layout: tuple[Lane, ...]) -> None:
    stored = record.lanes
    if len(stored) == len(layout):
        for tiles, lane in zip(stored, layout, strict=True):
            if len(tiles.states) != len(lane.positions):
                break
        else:
            return
    raise _corrupt("", "its lanes do not match the view's aggregations")


def tile_end(lane: Lane | Aggregation, at_us: int) -> int:
    """The end of the tile holding ``at_us`` (``at_us`` itself when a tile starts there)."""
    h = lane.granularity_us
    return -(-at_us // h) * h


def split(record: TileRecord, aggregations: tuple[Aggregation, ...], at_us: int,
          after: bool) -> TileRecord:
    """Per lane, the tiles before the end of the tile holding ``at_us``, or (``after``) the
    tiles from there on."""
    out = []
    for lane, tiles in zip(lanes(aggregations), record.lanes, strict=True):
        cut = bisect_left(tiles.starts, tile_end(lane, at_us))
        part = slice(cut, None) if after else slice(None, cut)
        out.append(LaneTiles(tiles.starts[part], tuple(s[part] for s in tiles.states)))
    return TileRecord(record.generation, record.latest_us, record.created_us, tuple(out))


def followed_by(record: TileRecord, later: TileRecord,
                aggregations: tuple[Aggregation, ...]) -> TileRecord:
    """``record`` plus the tiles of ``later`` (which all start after ``record``'s), with
    ``later``'s latest event, pruned to it."""
    out = []
    for lane, mine, theirs in zip(lanes(aggregations), record.lanes, later.lanes, strict=True):
        first = cutoff(lane, later.latest_us)
        starts = mine.starts + theirs.starts
        cut = bisect_left(starts, first)
        out.append(LaneTiles(starts[cut:], tuple(
            (a + b)[cut:] for a, b in zip(mine.states, theirs.states, strict=True))))
    return TileRecord(record.generation, later.latest_us, later.created_us, tuple(out))


def _order(ts: int, created: int | None) -> tuple[int, int]:
    return ts, NO_CREATED if created is None else created


def late_events(aggregations: Sequence[Aggregation], latest_of_entity: npt.NDArray[np.int64],
                entity: npt.NDArray[np.intp], ts: npt.NDArray[np.int64]) -> int:
    """How many events are older than every aggregation's allowed lateness, given each
    entity's latest event after the merge (``latest_of_entity[entity[i]]`` for event i)."""
    if ts.shape[0] == 0 or not aggregations:
        return 0
    latest = latest_of_entity[entity]
    late = np.ones(ts.shape[0], dtype=np.bool_)
    for agg in aggregations:
        h = agg.granularity_us
        late &= tile_start(ts, h) < tile_start(latest - agg.window_us, h)
    return int(np.count_nonzero(late))


def values_at(record: TileRecord, aggregations: tuple[Aggregation, ...],
              positions: Sequence[int], t: int) -> list[Any]:
    """The values at time ``t`` of the aggregations at ``positions``: each merges the tiles
    starting in ``[floor_h(t - W), t)`` and finalizes."""
    layout, slots = _layout(aggregations)
    _check_layout(record, layout)
    out = []
    for position in positions:
        index, slot = slots[position]
        lane = layout[index]
        fn = lane.functions[slot]
        tiles = record.lanes[index]
        lo = bisect_left(tiles.starts, cutoff(lane, t))
        hi = bisect_left(tiles.starts, t, lo)
        state = fn.init()
        for data in tiles.states[slot][lo:hi]:
            state = fn.merge(state, fn.decode(data))
        out.append(fn.finalize(state))
    return out
