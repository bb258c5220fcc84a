"""The online read path: entity rows + a compiled plan -> one store round trip -> response.

At time ``now`` a view's value for a key is its stored record, unless the record is older
than ``now - ttl`` (status EXPIRED, values null), or absent, written under another definition
of the view, or later than ``now`` (status MISSING: the point-in-time value at ``now`` is
not the latest delivered row, and the online store keeps only that one).

An aggregated view's record holds tiles (:mod:`headwater.aggregation.tiles`); its values are
the aggregations at ``now``, its event time the latest event it holds, its status PRESENT
when a record exists and MISSING when none (with the values of empty windows, as offline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from numbers import Integral
from operator import itemgetter
from typing import Any

from headwater.errors import DataError
from headwater.online.base import OnlineStore, ViewKeys
from headwater.online.encoding import decode_event, decode_values, encode_keys
from headwater.serving.plans import CompiledView, OnlinePlan
from headwater.serving.response import (
    EXPIRED,
    MISSING,
    PRESENT,
    OnlineResponse,
    ViewMetadata,
)
from headwater.types import DType, from_micros

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def entity_keys(plan: OnlinePlan, rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, ...],
                                                                             list[bytes]]:
    """Encoded keys per distinct join-key tuple (views of one entity share them)."""
    out: dict[tuple[str, ...], list[bytes]] = {}
    for view in plan.views:
        if view.join_keys not in out:
            out[view.join_keys] = encode_keys(view.join_keys, _key_columns(view, rows))
    return out


def _key_columns(view: CompiledView, rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """The join key values of ``rows``, one list per key, checked against the key types."""
    columns = []
    for name, kind in zip(view.join_keys, view.key_types, strict=True):
        try:
            values = [row[name] for row in rows]
        except KeyError:
            index = next(i for i, row in enumerate(rows) if name not in row)
            raise DataError(
                f"entity row {index} has no '{name}', which feature view "
                f"'{view.view.name}' is keyed by. Fix: add it to every entity row"
            ) from None
        for index, value in enumerate(values):
            if kind is str:
                if type(value) is str:
                    continue
            elif type(value) is int:  # the common case, without the ABC check (~0.4 us)
                if _INT_MIN <= value <= _INT_MAX:
                    continue
            elif (isinstance(value, Integral) and not isinstance(value, bool)
                  and _INT_MIN <= int(value) <= _INT_MAX):
                values[index] = int(value)  # numpy integers and the like become int
                continue
            raise DataError(
                f"entity row {index}: join key '{name}' of feature view "
                f"'{view.view.name}' is {value!r}, but the view's keys are "
                f"{'64-bit integer' if kind is int else 'string'} values. "
                f"Fix: pass it as {kind.__name__}"
            )
        columns.append(values)
    return columns


def read_online(store: OnlineStore, plan: OnlinePlan, rows: Sequence[Mapping[str, Any]],
                now_us: int) -> OnlineResponse:
    """Read every view of ``plan`` for ``rows`` in one round trip and build the response."""
    keys = entity_keys(plan, rows)
    results = store.read([ViewKeys(v.view.name, keys[v.join_keys]) for v in plan.views])
    n = len(rows)
    entity_columns = {name: [row[name] for row in rows] for name in plan.join_keys}
    features: dict[str, list[Any]] = {}
    dtypes: dict[str, DType] = {}
    metadata: dict[str, ViewMetadata] = {}
    stamps: dict[int, datetime | None] = {}  # event time -> datetime, shared by views
    for view, records in zip(plan.views, results, strict=True):
        if view.aggregations:
            values, latest, states = _aggregated(view, records, now_us)
            for name, field, column in zip(view.output_names, view.features, values,
                                           strict=True):
                features[name] = column
                dtypes[name] = field.dtype
            metadata[view.view.name] = ViewMetadata(_datetimes(latest, stamps), states)
            continue
        positions = view.positions
        width = len(positions)
        pick = itemgetter(*positions) if width > 1 else None
        empty = (None,) * width
        picked: list[Any] = [empty] * n  # per row: the requested values, in request order
        times: list[int | None] = [None] * n
        statuses = [MISSING] * n
        oldest = None if view.ttl_us is None else now_us - view.ttl_us
        for i, data in enumerate(records):
            if data is None:
                continue
            event_us, generation = decode_event(data)
            if generation != view.generation or event_us > now_us:
                continue
            times[i] = event_us
            if oldest is not None and event_us < oldest:
                statuses[i] = EXPIRED
                continue
            statuses[i] = PRESENT
            values = decode_values(data)
            picked[i] = pick(values) if pick is not None else (values[positions[0]],)
        columns = [list(column) for column in zip(*picked, strict=True)] if n else [
            [] for _ in positions]
        for name, field, column in zip(view.output_names, view.features, columns, strict=True):
            features[name] = column
            dtypes[name] = field.dtype
        metadata[view.view.name] = ViewMetadata(_datetimes(times, stamps), statuses)
    ordered = {name: features[name] for name in plan.order}  # the order of the request
    return OnlineResponse(entity_columns, ordered, dtypes, metadata)


def _aggregated(view: CompiledView, records: list[bytes | None], now_us: int
                ) -> tuple[list[list[Any]], list[int | None], list[str]]:
    """An aggregated view's requested values at ``now`` from its tile records, per row; the
    event time is the record's latest event. No record (or one of another definition) is
    MISSING with the values of empty windows (0 for count, sum and count_distinct, null for
    the others: what the offline value of an entity without events is); a record is PRESENT,
    its values finalized at ``now``."""
    from headwater.aggregation.base import FUNCTIONS
    from headwater.aggregation.tiles import decode_tiles, values_at

    n = len(records)
    aggs = view.aggregations
    empty = [FUNCTIONS[aggs[p].function] for p in view.positions]
    columns: list[list[Any]] = [[fn.finalize(fn.init())] * n for fn in empty]
    times: list[int | None] = [None] * n
    statuses = [MISSING] * n
    for i, data in enumerate(records):
        # a record of another definition generation may have another tile layout: its
        # header says so before the payload is decoded (MISSING until materialized again)
        if data is None or decode_event(data)[1] != view.generation:
            continue
        record = decode_tiles(data, len(aggs), view.view.name)
        times[i] = record.latest_us
        statuses[i] = PRESENT
        for column, value in zip(columns, values_at(record, aggs, view.positions, now_us),
                                 strict=True):
            column[i] = value
    return columns, times, statuses


def _datetimes(times: list[int | None],
               stamps: dict[int, datetime | None]) -> list[datetime | None]:
    """``from_micros`` of each time, made once per distinct time: records materialized
    together share their event time, and a datetime costs ten times a dict lookup."""
    out: list[datetime | None] = []
    for t in times:
        if t is None:
            out.append(None)
            continue
        stamp = stamps.get(t)
        if stamp is None:
            stamp = stamps[t] = from_micros(t)
        out.append(stamp)
    return out
