"""The training frame of a model: its labels joined point-in-time with its features.

:func:`build_training_frame` reads the label source (the entity join keys, the event time,
the request fields of on-demand views and the label, through the offline engine's
``read_source``), asks ``get_historical_features`` for the model's feature service at each
label's time, and returns the result in a canonical row order with its feature columns and
fingerprint.

The **model's features** are the feature service's columns as ``get_historical_features``
gives them, then the request fields its on-demand views read (taken from the label
source's columns); that order is the model's input order everywhere.

The **fingerprint** is a SHA-256 over the frame's content: for each column in the frame's
column order (join keys, timestamp, request fields, label, features) its name, its Arrow
type, which rows are null and the values of the others, in the canonical row order (by
timestamp, join keys, request fields and label; rows equal on those are equal on every
column, since features are a function of them). The same label rows and feature values
give the same fingerprint whatever the files' layout or row order; any changed value, type,
null, added or removed row gives another. It does not cover the definitions themselves
(the registry versions in the lineage do).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.definitions.model import ModelSpec
from headwater.definitions.selection import Selection
from headwater.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.store import FeatureStore


@dataclass(frozen=True)
class TrainingFrame:
    """Labelled rows with their point-in-time features, in canonical order.

    ``table`` holds ``join_keys``, ``timestamp`` (timestamp[us, UTC]), the request fields,
    ``label`` and ``features``, in that column order."""

    table: pa.Table
    features: tuple[str, ...]
    join_keys: tuple[str, ...]
    timestamp: str
    label: str
    request_fields: tuple[str, ...]
    fingerprint: str

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


def join_keys(selection: Selection) -> tuple[str, ...]:
    """The join keys of every feature view a selection reads, each once, in view order."""
    return tuple(dict.fromkeys(k for r in selection.requests for k in r.view.join_keys))


def request_fields(selection: Selection) -> tuple[str, ...]:
    """The request fields the selection's on-demand views read, each once."""
    return tuple(dict.fromkeys(f.name for r in selection.on_demand for f in r.request_fields))


def label_columns(spec: ModelSpec, selection: Selection) -> tuple[str, ...]:
    """The columns a model's label source must have: join keys, timestamp, request fields
    and the label column."""
    return tuple(dict.fromkeys((*join_keys(selection), spec.label.source.timestamp_field,
                                *request_fields(selection), spec.label.column)))


def build_training_frame(store: FeatureStore, spec: ModelSpec) -> TrainingFrame:
    """The point-in-time training frame of ``spec`` (see the module docstring).

    DataError when the label source has rows with a null label or timestamp (they are
    refused, not dropped, so that a training set never shrinks silently) or no rows."""
    import pyarrow.compute as pc

    me = f"ModelSpec '{spec.name}'"
    selection = store.resolve_features(spec.features, caller=me)
    keys, requests = join_keys(selection), request_fields(selection)
    timestamp, label = spec.label.source.timestamp_field, spec.label.column
    columns = label_columns(spec, selection)
    labels = store.offline.read_source(spec.label.source, columns)
    if labels.num_rows == 0:
        raise DataError(f"{me}: the label source {spec.label.source.label()} has no rows. "
                        "Fix: write labelled rows there before training")
    for column, what in ((label, "label"), (timestamp, "timestamp")):
        nulls = labels.column(column).null_count
        if nulls:
            raise DataError(
                f"{me}: {nulls} of {labels.num_rows} rows of {spec.label.source.label()} "
                f"have a null {what} ('{column}'). Fix: drop or fill those rows in the label "
                "source (rows without a label cannot be trained or evaluated on)")
    joined = store.get_historical_features(labels, spec.features,
                                           timestamp_field=timestamp).to_arrow()
    features = (*selection.order, *requests)
    ordered = joined.select([*columns, *selection.order])
    sortable = _sort_columns(ordered, (timestamp, *keys, *requests, label))
    canonical = ordered.take(pc.sort_indices(
        sortable, sort_keys=[(c, "ascending") for c in sortable.column_names]))
    canonical = canonical.combine_chunks().replace_schema_metadata(None)
    return TrainingFrame(canonical, features, keys, timestamp, label, requests,
                         fingerprint(canonical))


def _sort_columns(table: pa.Table, names: Sequence[str]) -> pa.Table:
    """The columns that order the frame, each in a sortable form: a dictionary column as
    its values, a nested one (a list or struct request field) as the canonical JSON text of
    each value, so the order, and so the fingerprint, never depends on the files' row
    order."""
    import json

    import pyarrow as pa
    import pyarrow.types as pat

    columns = []
    for name in names:
        column = table.column(name)
        if pat.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pat.is_nested(column.type):  # rare (request fields only): a pass over the rows
            column = pa.chunked_array([pa.array(
                [None if v is None else json.dumps(v, sort_keys=True, default=str)
                 for v in column.to_pylist()], pa.string())])
        columns.append(column)
    return pa.table(columns, names=[f"k{i}" for i in range(len(columns))])


def fingerprint(table: pa.Table) -> str:
    """SHA-256 (hex) of ``table``'s names, types, null masks and non-null values, in its
    column and row order (see the module docstring). Values under nulls, chunk layout and
    schema metadata do not count."""
    digest = hashlib.sha256()
    digest.update(f"rows={table.num_rows};".encode())
    for name, column in zip(table.column_names, table.columns, strict=True):
        digest.update(f"{name}:{column.type};".encode())
        digest.update(_column_bytes(column))
    return digest.hexdigest()


def _column_bytes(column: pa.ChunkedArray) -> bytes:
    """A canonical serialization of one column: its validity mask, then its values with
    nulls replaced by a fixed value of the type (Arrow IPC of a fresh single chunk)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    array = column.combine_chunks()
    mask = np.packbits(array.is_null().to_numpy(zero_copy_only=False)).tobytes()
    filler = _zero(array.type)
    if array.null_count and filler is not None:
        array = pc.fill_null(array, filler)
    sink = pa.BufferOutputStream()
    batch = pa.record_batch([pa.concat_arrays([array])], names=["v"])
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return mask + bytes(sink.getvalue().to_pybytes())


def _zero(kind: pa.DataType) -> Any:
    """A fixed fill value of ``kind`` (None for types without a simple one)."""
    import pyarrow as pa
    import pyarrow.types as pat

    if pat.is_boolean(kind):
        return pa.scalar(False, kind)
    if pat.is_floating(kind):
        return pa.scalar(0.0, kind)
    if pat.is_integer(kind) or pat.is_timestamp(kind) or pat.is_duration(kind):
        return pa.scalar(0, pa.int64()).cast(kind)
    if pat.is_date32(kind):
        return pa.scalar(0, pa.int32()).cast(kind)
    if pat.is_string(kind) or pat.is_large_string(kind):
        return pa.scalar("", kind)
    if pat.is_binary(kind) or pat.is_large_binary(kind):
        return pa.scalar(b"", kind)
    return None


def feature_types(table: pa.Table, features: Sequence[str]) -> dict[str, str]:
    """Each feature's Arrow type name, as recorded in a model version."""
    return {name: str(table.schema.field(name).type) for name in features}
