"""Arrow batches of feature rows -> online keys and records.

The one place where offline rows become online records, used by materialization and push.
Building one bytes object per entity is inherent to the online stores' clients; the columns
are converted to Python lists once per batch, never per cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureView
from headwater.online.encoding import encode_key, encode_record
from headwater.types import Timestamp

if TYPE_CHECKING:
    import pyarrow as pa

TS = "__hw_ts"
CREATED = "__hw_created"


def _micros(column: pa.ChunkedArray | pa.Array) -> list[int | None]:
    import pyarrow as pa

    return list(column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist())


def encode_batch(view: FeatureView, fingerprint: int,
                 batch: pa.RecordBatch) -> tuple[list[bytes], list[bytes]]:
    """Keys and records for a batch with the view's join keys, ``__hw_ts``,
    ``__hw_created`` and its features in schema order (see ``OfflineEngine.latest_rows``)."""
    names = view.join_keys
    key_columns = [batch.column(name).to_pylist() for name in names]
    keys = [encode_key(names, values) for values in zip(*key_columns, strict=True)]
    event = _micros(batch.column(TS))
    created = _micros(batch.column(CREATED))
    columns: list[list[Any]] = []
    for field in view.features:
        column = batch.column(field.name)
        columns.append(_micros(column) if field.dtype == Timestamp else column.to_pylist())
    rows = zip(*columns, strict=True) if columns else iter([()] * batch.num_rows)
    records = [
        encode_record(ts, made, fingerprint, values)  # type: ignore[arg-type]  # ts not null
        for ts, made, values in zip(event, created, rows, strict=True)
    ]
    return keys, records
