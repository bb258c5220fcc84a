"""A batch's partial states merged into many tile records at once.

:func:`merge_records` gives, for every entity of a batch
(:class:`~headwater.aggregation.grouped.Partials`), the record that
:func:`~headwater.aggregation.tiles.merge_into` and
:func:`~headwater.aggregation.tiles.encode_tiles` give, byte for byte, without an object per
tile. The stored records are parsed together (:mod:`~headwater.aggregation.record_scan`);
then per lane, over all entities together, the stored tiles and the batch's tiles are pruned
to each entity's first readable tile, sorted by (entity, start) with the stored tile first on
a tie, a tile both hold is merged with the algebra's ``merge`` (a Python call per such tile:
usually only a batch's first tile of an entity), and the records are cut out of one buffer
per column.

An entity whose record does not fit that shape (the earlier msgpack layout, states of varying
width, or a merged state of another width than its inputs) goes through ``merge_into``, as
does every entity when the batch's own states vary in width; a record of another definition
generation is left alone (see :func:`merge_records`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from headwater.aggregation.packed import packed
from headwater.aggregation.record_scan import Scan, scan_records
from headwater.aggregation.tiles import (
    FORMAT,
    Lane,
    decode_tiles,
    encode_tiles,
    lanes,
    merge_into,
    row_type,
    widths_of,
)
from headwater.definitions.aggregation import Aggregation

if TYPE_CHECKING:
    from headwater.aggregation.grouped import LaneGroups, Partials

SKIPPED = np.iinfo(np.int64).max
"""The latest event time :func:`merge_records` gives an entity whose record it left alone."""



def merge_records(aggregations: tuple[Aggregation, ...], generation: int, part: Partials,
                  current: dict[bytes, bytes | None], view: str = ""
                  ) -> tuple[dict[bytes, bytes], npt.NDArray[np.int64]]:
    """The new records of the entities of ``part`` (definition ``generation``) given their
    ``current`` ones, and each entity's latest event time after the merge.

    A record of another generation is left alone (no new record; its latest is
    :data:`SKIPPED`): a newer one is not overwritten, and an older one cannot be rebuilt
    from events alone, so it reads MISSING until materialize rebuilds it."""
    layout = lanes(aggregations)
    keys = part.keys
    latest = part.latest_us.copy()
    created = part.latest_created_us.copy()
    widths = [tuple(_width(states) for states in groups.states) for groups in part.lanes]
    bulk = all(w for lane in widths for w in lane)
    scan = scan_records(list(map(current.get, keys)), generation,
                        widths if bulk else None)
    fast = np.zeros(len(keys), dtype=np.bool_)
    if bulk:
        fast[:] = True
    ours = scan.generation == generation
    latest[scan.positions[~ours]] = SKIPPED
    fast[scan.positions] = ours & scan.regular
    # a stored record of this generation whose latest event sorts higher stays the latest
    mine, theirs = scan.positions[ours], np.flatnonzero(ours)
    later = ((scan.latest_us[theirs] > latest[mine])
             | ((scan.latest_us[theirs] == latest[mine])
                & (scan.created_us[theirs] >= created[mine])))
    latest[mine[later]] = scan.latest_us[theirs[later]]
    created[mine[later]] = scan.created_us[theirs[later]]
    slow = (np.flatnonzero(~fast & (latest != SKIPPED))).tolist()
    records: dict[bytes, bytes] = {}
    if fast.any():
        redo = _merge_bulk(part, fast, scan, layout=layout, generation=generation,
                           latest=latest, created=created, widths=widths, records=records)
        slow.extend(redo)
    for e in slow:
        key = keys[e]
        data = current.get(key)
        record = None if data is None else decode_tiles(data, len(aggregations), view)
        merged = merge_into(record, part.by_key[key], aggregations, generation)
        if merged is None:  # not reached: only this generation's records are merged
            latest[e] = SKIPPED
            continue
        latest[e] = merged.latest_us
        records[key] = encode_tiles(merged)
    return records, latest


def _width(states: list[bytes]) -> int:
    """The width of every state, or 0 when they differ (or are empty)."""
    known = packed(states)
    if known is not None:
        return known[0]
    found = set(map(len, states))
    return found.pop() if len(found) == 1 else 0


_SIGN = np.uint64(1 << 63)


def _merge_bulk(part: Partials, fast: npt.NDArray[np.bool_], scan: Scan, *,
                layout: tuple[Lane, ...],
                generation: int, latest: npt.NDArray[np.int64],
                created: npt.NDArray[np.int64], widths: list[tuple[int, ...]],
                records: dict[bytes, bytes]) -> list[int]:
    """Merge the ``fast`` entities lane by lane into ``records``; the entities to merge one
    by one instead (a merged state changed width)."""
    entities = np.flatnonzero(fast)
    stored_entity = scan.positions[scan.regular]
    redo: set[int] = set()
    # per lane: each fast entity's bounds in the merged rows, and the rows
    cut: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], memoryview, int]] = []
    for index, lane in enumerate(layout):
        kind = row_type(widths[index])
        entity, rows = _lane_rows(lane, part.lanes[index], fast, kind=kind, latest=latest,
                                  counts=scan.counts[index], stored=scan.rows[index],
                                  stored_entity=stored_entity)
        if entity.shape[0] > 1:
            starts = rows["start"]
            same = np.flatnonzero((entity[1:] == entity[:-1]) & (starts[1:] == starts[:-1]))
            if same.shape[0]:
                _merge_ties(lane, same, entity, rows, redo)
                keep = np.ones(entity.shape[0], dtype=np.bool_)
                keep[same + 1] = False
                entity, rows = entity[keep], rows.view(f"V{kind.itemsize}")[keep].view(kind)
        cut.append((np.searchsorted(entity, entities, "left"),
                    np.searchsorted(entity, entities, "right"),
                    np.ascontiguousarray(rows).view(np.uint8).data, kind.itemsize))
    heads = _heads(entities, layout, widths, cut, generation=generation, latest=latest,
                   created=created)
    keys = part.keys
    rows_at = [((lo * width).tolist(), (hi * width).tolist(), buffer)
               for lo, hi, buffer, width in cut]
    join = b"".join
    if len(cut) == 1 and not redo:  # the usual: one lane
        (view, size), (lo_at, hi_at, buffer) = heads[0], rows_at[0]
        records.update(zip(map(keys.__getitem__, entities.tolist()), [
            join((view[at:at + size], buffer[a:b]))
            for at, a, b in zip(range(0, size * len(lo_at), size), lo_at, hi_at, strict=True)],
            strict=True))
        return []
    for i, e in enumerate(entities.tolist()):
        if redo and e in redo:
            continue
        pieces: list[memoryview] = []
        for (view, size), (lo_at, hi_at, buffer) in zip(heads, rows_at, strict=True):
            pieces += (view[i * size:(i + 1) * size], buffer[lo_at[i]:hi_at[i]])
        records[keys[e]] = join(pieces)
    return sorted(redo)


def _heads(entities: npt.NDArray[np.intp], layout: tuple[Lane, ...],
           widths: list[tuple[int, ...]],
           cut: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], memoryview, int]], *,
           generation: int, latest: npt.NDArray[np.int64], created: npt.NDArray[np.int64]
           ) -> list[tuple[memoryview, int]]:
    """Per lane, what comes before its rows in each entity's record, built for all
    entities at once, and its size: the lane's state count, tile count and state widths,
    after the record's header and layout bytes for the first lane (the bytes
    ``encode_header`` and ``encode_tiles`` give)."""
    out = []
    for index, (lo, hi, _, _) in enumerate(cut):
        stored_widths = widths_of(widths[index])
        fields: list[tuple[str, str]] = []
        if index == 0:
            fields += [("generation", ">u4"), ("event", ">u8"), ("created", ">u8"),
                       ("layout", f"V{len(FORMAT) + 1}")]
        fields += [("count", "u1"), ("tiles", "<u4"), ("widths", f"V{len(stored_widths)}")]
        head = np.empty(entities.shape[0], dtype=np.dtype(fields))
        if index == 0:
            head["generation"] = generation
            # the order header: times with the sign bit flipped; no created time reads 0
            head["event"] = latest[entities].astype(np.uint64) ^ _SIGN
            head["created"] = created[entities].astype(np.uint64) ^ _SIGN
            head["layout"] = np.void(FORMAT + bytes((len(layout),)))
        head["count"] = len(widths[index])
        head["tiles"] = hi - lo
        head["widths"] = np.void(stored_widths)
        out.append((memoryview(head.tobytes()), head.dtype.itemsize))
    return out


def _lane_rows(lane: Lane, groups: LaneGroups, fast: npt.NDArray[np.bool_], *,
               counts: npt.NDArray[np.intp], stored: bytes,
               stored_entity: npt.NDArray[np.intp], kind: np.dtype[np.void],
               latest: npt.NDArray[np.int64]
               ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.void]]:
    """The stored and the new tiles (rows) of the fast entities in one lane, from each
    entity's first readable tile on, sorted by (entity, start), the stored one first on a
    tie. Both sides come sorted so (the stored records' entities ascending, each record's
    tiles in start order; the batch's groups by entity and start): they are merged, not
    sorted again, unless one is not in order. Rows are moved as opaque items of the row's
    size, not field by field."""
    h = lane.granularity_us
    first = (latest - lane.window_us) // h * h
    raw = np.dtype(f"V{kind.itemsize}")
    old_entity = np.repeat(stored_entity, counts)
    old = np.frombuffer(stored, dtype=kind)
    new = fast[groups.entity]
    new_entity = groups.entity[new]
    added = np.empty(new_entity.shape[0], dtype=kind)
    added["start"] = groups.starts[new]
    for i, column in enumerate(groups.states):
        width = kind[f"s{i}"].itemsize
        known = packed(column)
        joined = known[1] if known is not None else b"".join(column)
        added[f"s{i}"] = np.frombuffer(joined, dtype=f"V{width}")[new]
    old_keep = old["start"] >= first[old_entity]
    new_keep = added["start"] >= first[new_entity]
    old_entity, old_start = old_entity[old_keep], old["start"][old_keep]
    new_entity, new_start = new_entity[new_keep], added["start"][new_keep]
    old_rows, new_rows = old.view(raw)[old_keep], added.view(raw)[new_keep]
    at = _merge_positions(old_entity, old_start, new_entity, new_start, h)
    if at is None:  # not in order: sort the union
        entity = np.concatenate([old_entity, new_entity])
        rows = np.concatenate([old_rows, new_rows])
        order = np.lexsort((np.concatenate([old_start, new_start]), entity))  # stable
        return entity[order], rows[order].view(kind)
    total = old_entity.shape[0] + new_entity.shape[0]
    stored_at = np.ones(total, dtype=np.bool_)
    stored_at[at] = False
    entity = np.empty(total, dtype=np.intp)
    entity[at], entity[stored_at] = new_entity, old_entity
    rows = np.empty(total, dtype=raw)
    rows[at], rows[stored_at] = new_rows, old_rows
    return entity, rows.view(kind)


def _merge_positions(old_entity: npt.NDArray[np.intp], old_start: npt.NDArray[np.int64],
                     new_entity: npt.NDArray[np.intp], new_start: npt.NDArray[np.int64],
                     granularity: int) -> npt.NDArray[np.intp] | None:
    """Where each new row goes in the merge of the stored and the new rows, both sorted by
    (entity, start), a new row after a stored one of the same (entity, start); None when
    a side is not sorted, a start is off the tile grid, or the (entity, tile) key would
    not fit in an int64."""
    starts = np.concatenate([old_start, new_start])
    if starts.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    base = int(starts.min())
    if ((starts - base) % granularity).any():
        return None
    span = (int(starts.max()) - base) // granularity + 1
    entities = int(max(old_entity.max(initial=0), new_entity.max(initial=0))) + 1
    if entities * span >= 1 << 62:
        return None
    old_key = old_entity.astype(np.int64) * span + (old_start - base) // granularity
    new_key = new_entity.astype(np.int64) * span + (new_start - base) // granularity
    if (old_key[1:] < old_key[:-1]).any() or (new_key[1:] < new_key[:-1]).any():
        return None
    at: npt.NDArray[np.intp] = (np.searchsorted(old_key, new_key, side="right")
                                + np.arange(new_key.shape[0]))
    return at


def _merge_ties(lane: Lane, same: npt.NDArray[np.intp], entity: npt.NDArray[np.intp],
                rows: npt.NDArray[np.void], redo: set[int]) -> None:
    """Merge each tile held twice (stored at ``i``, new at ``i + 1`` for ``i`` in ``same``)
    into row ``i``, in place; an entity whose merged state changes width is added to
    ``redo``."""
    for slot, fn in enumerate(lane.functions):
        column = rows[f"s{slot}"]
        width = column.dtype.itemsize
        decode, encode, merge = fn.decode, fn.encode, fn.merge
        for i in same.tolist():
            merged = encode(merge(decode(column[i].tobytes()), decode(column[i + 1].tobytes())))
            if len(merged) == width:
                column[i] = np.void(merged)
            else:
                redo.add(int(entity[i]))
