"""The online read path: entity rows + a compiled plan -> one store round trip -> response.

At time ``now`` a view's value for a key is its stored record, unless the record is older
than ``now - ttl`` (status EXPIRED, values null) or absent or written under another schema
(status MISSING).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from headwater.errors import DataError
from headwater.online.base import OnlineStore, ViewKeys
from headwater.online.encoding import decode_record, encode_key
from headwater.serving.plans import OnlinePlan
from headwater.serving.response import (
    EXPIRED,
    MISSING,
    PRESENT,
    OnlineResponse,
    ViewMetadata,
    from_micros,
)
from headwater.types import DType


def entity_keys(plan: OnlinePlan, rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, ...],
                                                                             list[bytes]]:
    """Encoded keys per distinct join-key tuple (views of one entity share them)."""
    out: dict[tuple[str, ...], list[bytes]] = {}
    for view in plan.views:
        names = view.join_keys
        if names in out:
            continue
        keys = []
        for index, row in enumerate(rows):
            try:
                values = [row[name] for name in names]
            except KeyError as exc:
                raise DataError(
                    f"entity row {index} has no '{exc.args[0]}', which feature view "
                    f"'{view.view.name}' is keyed by. Fix: add it to every entity row"
                ) from None
            for name, value, kind in zip(names, values, view.key_types, strict=True):
                if isinstance(value, bool) or not isinstance(value, kind):
                    raise DataError(
                        f"entity row {index}: join key '{name}' of feature view "
                        f"'{view.view.name}' is {value!r}, but the view's keys are "
                        f"{kind.__name__} values. Fix: pass it as {kind.__name__}"
                    )
            keys.append(encode_key(names, values))
        out[names] = keys
    return out


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
    for view, records in zip(plan.views, results, strict=True):
        columns: list[list[Any]] = [[None] * n for _ in view.positions]
        times: list[int | None] = [None] * n
        statuses = [MISSING] * n
        oldest = None if view.ttl_us is None else now_us - view.ttl_us
        for i, data in enumerate(records):
            if data is None:
                continue
            record = decode_record(data)
            if record.fingerprint != view.fingerprint:
                continue
            times[i] = record.event_us
            if oldest is not None and record.event_us < oldest:
                statuses[i] = EXPIRED
                continue
            statuses[i] = PRESENT
            values = record.values
            for column, position in zip(columns, view.positions, strict=True):
                column[i] = values[position]
        for name, field, column in zip(view.output_names, view.features, columns, strict=True):
            features[name] = column
            dtypes[name] = field.dtype
        metadata[view.view.name] = ViewMetadata([from_micros(t) for t in times], statuses)
    return OnlineResponse(entity_columns, features, dtypes, metadata)
