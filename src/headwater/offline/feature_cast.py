"""Source values as their feature's declared dtype: one cast for every offline output.

Training frames (:mod:`~headwater.offline.result_stream`) and the latest rows that
materialization copies online (:mod:`~headwater.offline.latest`) both cast each feature
column from the type the source stores to the dtype the view declares. A value that does
not fit (a uint64 above 2^63 declared ``Int64``, a string declared ``Float64``) is the same
DataError on both paths, naming the view, the feature and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING

from headwater.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa


def cast_feature(values: pa.Array, target: pa.DataType, *, view: str, feature: str) -> pa.Array:
    """``values`` (an array) of feature ``feature`` of view ``view`` as ``target``;
    unchanged when they have that type already."""
    import pyarrow as pa

    if values.type == target:
        return values
    try:
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"FeatureView '{view}': feature '{feature}': source values of type {values.type} "
            f"cannot be served as {target} ({exc}). Fix: declare the feature with the "
            "source's type, or convert the source column"
        ) from exc


def cast_batches(reader: pa.RecordBatchReader, schema: pa.Schema, *, view: str,
                 values: Collection[str],
                 close: Callable[[], None]) -> Iterator[pa.RecordBatch]:
    """The batches of ``reader`` cast to ``schema``: the ``values`` columns by
    :func:`cast_feature` (a value that does not fit is a DataError naming ``view`` and the
    column), the others (keys, times) plainly; ``close`` runs when the stream ends."""
    import pyarrow as pa

    try:
        for batch in reader:
            arrays = [cast_feature(column, field.type, view=view, feature=field.name)
                      if field.name in values else column.cast(field.type)
                      for column, field in zip(batch.columns, schema, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        close()
