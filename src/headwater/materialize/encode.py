"""Arrow batches of feature rows -> online keys and records.

The one place where offline rows become online records, used by materialization and push.
Building one bytes object per entity is inherent to the online stores' clients; the columns
are converted to Python lists once per batch, never per cell.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureView
from headwater.offline.base import LATEST_CREATED, LATEST_TS
from headwater.online.encoding import encode_key, encode_record
from headwater.types import Array, Timestamp

if TYPE_CHECKING:
    import pyarrow as pa

_TIMESTAMP_LIST = Array(Timestamp)


def record_layout(spec: Mapping[str, Any]) -> str:
    """What a view's online records depend on, read from one stored spec of the view: its
    features and dtypes, its entities and its source, and its aggregations when it has some
    (not the ttl, applied at read time, nor descriptions and tags)."""
    parts = [spec.get("schema"), spec.get("entities"), spec.get("source")]
    aggregations = spec.get("aggregations")
    if aggregations:  # tile records hold one tile list per aggregation, in order
        parts.append([{k: v for k, v in a.items() if k != "description"}
                      for a in aggregations])
    return json.dumps(parts, sort_keys=True)


def view_generation(specs: Sequence[Mapping[str, Any]]) -> int:
    """The definition generation of a view's latest version, given the stored specs of all
    its versions, oldest first: 1, plus one for every version whose record layout differs
    from the one before. Online records carry it (:mod:`headwater.online.encoding`)."""
    generation = 0
    previous = None
    for spec in specs:
        layout = record_layout(spec)
        if layout != previous:
            generation += 1
            previous = layout
    return generation


def _micros(column: pa.ChunkedArray | pa.Array) -> list[int | None]:
    import pyarrow as pa

    return list(column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist())


def _micro_lists(column: pa.ChunkedArray | pa.Array) -> list[list[int | None] | None]:
    import pyarrow as pa

    as_micros = pa.list_(pa.int64())
    stamped = column.cast(pa.list_(pa.timestamp("us", tz="UTC")))
    return list(stamped.cast(as_micros).to_pylist())


def encode_batch(view: FeatureView, generation: int,
                 batch: pa.RecordBatch) -> tuple[list[bytes], list[bytes]]:
    """Keys and records for a batch with the view's join keys, ``__hw_ts``,
    ``__hw_created`` and its features in schema order (see ``OfflineEngine.latest_rows``)."""
    names = view.join_keys
    key_columns = [batch.column(name).to_pylist() for name in names]
    keys = [encode_key(names, values) for values in zip(*key_columns, strict=True)]
    event = _micros(batch.column(LATEST_TS))
    created = _micros(batch.column(LATEST_CREATED))
    columns: list[list[Any]] = []
    for field in view.features:
        column = batch.column(field.name)
        if field.dtype == Timestamp:
            columns.append(_micros(column))
        elif field.dtype == _TIMESTAMP_LIST:
            columns.append(_micro_lists(column))
        else:
            columns.append(column.to_pylist())
    rows = zip(*columns, strict=True) if columns else iter([()] * batch.num_rows)
    records = [
        encode_record(ts, made, generation, values)  # type: ignore[arg-type]  # ts not null
        for ts, made, values in zip(event, created, rows, strict=True)
    ]
    return keys, records
