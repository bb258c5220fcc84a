"""On-demand features in training frames: the function runs on each streamed batch.

The offline engine joins the features the selection needs (those asked for and, under
hidden names, those the on-demand functions read); each result batch then gets the
on-demand columns, computed from its own rows and the request fields among the entity
frame's columns, and loses the hidden ones. Memory stays bounded by the batch size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from headwater.definitions.selection import Selection
from headwater.errors import DataError
from headwater.offline.retrieval import RetrievalJob
from headwater.transforms.execute import cast_column, run_on_demand
from headwater.transforms.functions import Function

if TYPE_CHECKING:
    import pyarrow as pa


def with_on_demand(job: RetrievalJob, selection: Selection,
                   functions: Mapping[str, Function]) -> RetrievalJob:
    """``job`` (entity columns, then ``selection.fetched_order``) with the on-demand
    features added and the columns in ``selection.order``; ``functions`` maps each
    on-demand view name to its callable."""

    def open_reader() -> pa.RecordBatchReader:
        import pyarrow as pa

        reader = job.to_reader()
        fetched = selection.fetched_order
        names = list(reader.schema.names)
        entity = names[:len(names) - len(fetched)]
        check_request_fields(selection, entity)
        types = {field.name: field.type for field in reader.schema}
        for request in selection.on_demand:
            types.update(zip(request.output_names,
                             (f.dtype.to_arrow() for f in request.features), strict=True))
        schema = pa.schema([*(reader.schema.field(n) for n in entity),
                            *(pa.field(n, types[n]) for n in selection.order)],
                           metadata=reader.schema.metadata)
        return pa.RecordBatchReader.from_batches(
            schema, _batches(reader, selection, functions, [*entity, *selection.order],
                             schema))

    return RetrievalJob(open_reader)


def check_request_fields(selection: Selection, columns: list[str]) -> None:
    """DataError naming the first request field the entity frame lacks, or the first
    on-demand feature that would overwrite one of its columns."""
    for request in selection.on_demand:
        for output in request.output_names:
            if output in columns:
                raise DataError(
                    f"get_historical_features: entity frame column '{output}' would be "
                    f"overwritten by feature '{output}' of on-demand view "
                    f"'{request.view.name}'. Fix: rename or drop the column, or pass "
                    "full_feature_names=True")
        for field in request.request_fields:
            if field.name not in columns:
                raise DataError(
                    f"get_historical_features: the entity frame has no column "
                    f"'{field.name}', a request field of on-demand view '{request.view.name}'. "
                    f"Fix: add a '{field.name}' column to the entity frame")


def _batches(reader: pa.RecordBatchReader, selection: Selection,
             functions: Mapping[str, Function], columns: list[str],
             schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    try:
        for batch in reader:
            computed: dict[str, pa.Array] = {}
            for request in selection.on_demand:
                arrays = [batch.column(fetched) for _, fetched in request.inputs]
                names = [name for name, _ in request.inputs]
                for field in request.request_fields:
                    arrays.append(cast_column(
                        batch.column(field.name), field,
                        f"request field '{field.name}' of on-demand view "
                        f"'{request.view.name}'", "the entity frame"))
                    names.append(field.name)
                inputs = pa.table(arrays, names=names)
                values = run_on_demand(request.view, functions[request.view.name], inputs)
                computed.update((out, values[f.name]) for out, f in
                                zip(request.output_names, request.features, strict=True))
            yield pa.RecordBatch.from_arrays(
                [computed[n] if n in computed else batch.column(n) for n in columns],
                schema=schema)
    finally:
        reader.close()
