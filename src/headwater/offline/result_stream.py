"""Streaming the training frame: the user's entity columns beside the joined features.

The join returns, in entity row order, the row position and the feature columns only; the
entity columns never pass through DuckDB, so they come back exactly as given (same values,
same Arrow types). Each result batch covering rows ``[offset, offset + n)`` is paired with
the zero-copy slice of the entity table at the same rows, and its feature columns are cast
to the declared dtypes (:mod:`~headwater.offline.feature_cast`, as materialization does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from headwater.errors import HeadwaterError
from headwater.offline.feature_cast import cast_feature

if TYPE_CHECKING:
    import pyarrow as pa


def output_schema(entity: pa.Schema, names: Sequence[str],
                  types: Sequence[pa.DataType]) -> pa.Schema:
    """The entity frame's columns, then one column per feature of the declared type."""
    import pyarrow as pa

    fields = [*entity, *(pa.field(n, t) for n, t in zip(names, types, strict=True))]
    return pa.schema(fields, metadata=entity.metadata)


def stitch(
    entity: pa.Table,
    joined: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    features: Sequence[tuple[str, str]],
    close: Callable[[], None],
) -> Iterator[pa.RecordBatch]:
    """Yield output batches of ``schema`` from the join's batches (``__hw_row`` then the
    features, in order); ``features`` names the (view, feature) of each feature column, for
    the message when a value does not fit its declared dtype
    (:func:`~headwater.offline.feature_cast.cast_feature`); ``close`` runs when the stream
    ends or is abandoned.

    Raises HeadwaterError if the join's rows are not exactly the entity rows in order, which
    would be a bug in the engine, never a user error."""
    import pyarrow as pa

    n_entity = len(entity.schema)
    targets = [schema.field(i) for i in range(n_entity, len(schema))]
    offset = 0
    try:
        for batch in joined:
            n = batch.num_rows
            if n == 0:
                continue
            rows = batch.column(0)
            if rows[0].as_py() != offset or rows[n - 1].as_py() != offset + n - 1:
                raise HeadwaterError(
                    f"the point-in-time join returned rows out of order at row {offset}; "
                    "this is a bug in Headwater's DuckDB engine, please report it"
                )
            values = [cast_feature(batch.column(i + 1), target.type, view=view, feature=name)
                      for i, (target, (view, name)) in enumerate(zip(targets, features,
                                                                     strict=True))]
            start = 0
            for part in entity.slice(offset, n).to_batches():
                m = part.num_rows
                arrays = [*part.columns, *(v.slice(start, m) for v in values)]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
                start += m
            offset += n
        if offset != entity.num_rows:
            raise HeadwaterError(
                f"the point-in-time join returned {offset} rows for {entity.num_rows} entity "
                "rows; this is a bug in Headwater's DuckDB engine, please report it"
            )
    finally:
        close()

