"""Tile records: the online record of one (aggregated feature view, entity).

A record is the standard 20-byte header of :mod:`headwater.online.encoding` (the view's
definition generation, the event time of the latest event the record holds, and that event's
created time), then a msgpack array with, per aggregation of the view in definition order, the
flat array ``[start, state, start, state, ...]`` of its tiles: ``start`` the tile start in
microseconds, ascending, and ``state`` the aggregator's ``encode`` of the tile's state. The
same tiles always give the same bytes.

Merging a batch's partial states into a record (:func:`merge_into`) merges tile by tile with the
algebra's ``merge``, then *prunes*: with ``L`` the record's latest event, a read at ``t >= L``
merges, per aggregation of window ``W`` and tile size ``h``, the tiles from ``floor_h(t - W)``
on, so tiles starting before ``floor_h(L - W)`` can never be read again and are dropped.

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

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack
import numpy as np
import numpy.typing as npt

from headwater.aggregation.base import FUNCTIONS, Aggregator
from headwater.aggregation.windows import tile_start
from headwater.definitions.aggregation import Aggregation
from headwater.errors import DataError
from headwater.online.encoding import HEADER_BYTES, decode_header, encode_header

if TYPE_CHECKING:
    from headwater.aggregation.grouped import EntityPartial

_packb = msgpack.packb
_unpackb = msgpack.unpackb

NO_CREATED = -(2**63)
"""The created time of an event without one: it sorts below every created time."""


@dataclass(frozen=True)
class TileRecord:
    """A decoded tile record: per aggregation, encoded tile states by tile start."""

    generation: int
    latest_us: int
    created_us: int | None
    tiles: tuple[dict[int, bytes], ...]


class Spec(NamedTuple):
    """What tile arithmetic needs of one aggregation, resolved once."""

    function: Aggregator[Any]
    window_us: int
    granularity_us: int


@lru_cache(maxsize=256)
def specs(aggregations: tuple[Aggregation, ...]) -> tuple[Spec, ...]:
    """The resolved function, window and tile size of each aggregation (cached)."""
    return tuple(Spec(FUNCTIONS[a.function], a.window_us, a.granularity_us)
                 for a in aggregations)


def encode_tiles(record: TileRecord) -> bytes:
    """The stored bytes of a tile record (deterministic: tiles in start order)."""
    payload = [list(chain.from_iterable(sorted(tiles.items()))) for tiles in record.tiles]
    header = encode_header(record.latest_us, record.created_us, record.generation)
    return header + bytes(_packb(payload, use_bin_type=True))


def decode_tiles(data: bytes, aggregations: int, view: str = "") -> TileRecord:
    """A stored tile record of a view with ``aggregations`` aggregations."""
    generation, latest, created = decode_header(data)
    try:
        payload = _unpackb(data[HEADER_BYTES:])
    except (ValueError, msgpack.UnpackException) as exc:
        raise _corrupt(view, str(exc)) from exc
    if not isinstance(payload, list) or len(payload) != aggregations:
        raise _corrupt(view, f"expected {aggregations} tile lists")
    tiles = tuple(dict(zip(flat[::2], flat[1::2], strict=True)) for flat in payload)
    return TileRecord(generation, latest, created, tiles)


def _corrupt(view: str, problem: str) -> DataError:
    return DataError(f"the online tile record of feature view '{view}' is corrupt ({problem}). "
                     "Fix: materialize the view again to rebuild its records")


def cutoff(aggregation: Aggregation | Spec, latest_us: int) -> int:
    """The first tile start any read at or after ``latest_us`` merges: ``floor_h(L - W)``."""
    h = aggregation.granularity_us
    return (latest_us - aggregation.window_us) // h * h


def merge_into(stored: TileRecord | None, partial: EntityPartial,
               aggregations: tuple[Aggregation, ...], generation: int) -> TileRecord | None:
    """The record after adding ``partial`` to ``stored`` (None: no record yet), pruned.

    A stored record of an older definition generation is discarded and rebuilt from the
    partial; one of a newer generation is never overwritten: the result is None and the
    caller leaves it in place (as the online ``write`` skips older records)."""
    record = stored
    if record is not None:
        if record.generation > generation:
            return None
        if record.generation < generation:
            record = None
    if record is None:
        record = TileRecord(generation, partial.latest_us, partial.latest_created_us,
                            tuple({} for _ in aggregations))
    elif _order(partial.latest_us, partial.latest_created_us) > _order(
            record.latest_us, record.created_us):
        record = TileRecord(generation, partial.latest_us, partial.latest_created_us,
                            record.tiles)
    merged: list[dict[int, bytes]] = []
    latest = record.latest_us
    for spec, tiles, new in zip(specs(aggregations), record.tiles, partial.tiles,
                                strict=True):
        fn = spec.function
        h = spec.granularity_us
        first = (latest - spec.window_us) // h * h
        out = {start: state for start, state in tiles.items() if start >= first}
        for start, state in new.items():
            if start < first:
                continue  # later than the allowed lateness: no read can need it
            old = out.get(start)
            out[start] = fn.encode(state if old is None else fn.merge(fn.decode(old), state))
        merged.append(out)
    return TileRecord(record.generation, latest, record.created_us, tuple(merged))


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
    resolved = specs(aggregations)
    out = []
    for position in positions:
        spec = resolved[position]
        fn = spec.function
        first = cutoff(spec, t)
        state = fn.init()
        for start, data in record.tiles[position].items():
            if first <= start < t:
                state = fn.merge(state, fn.decode(data))
        out.append(fn.finalize(state))
    return out
