"""RetrievalJob: a lazy training-frame result that streams as Arrow record batches."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


class RetrievalJob:
    """The result of ``get_historical_features``.

    Nothing runs until a result is asked for. ``to_batches``/``to_reader`` stream with bounded
    memory; ``to_arrow``, ``to_pandas`` and ``to_polars`` collect; ``to_parquet`` streams to a
    file. Each call runs the query again. On the Spark engine, ``to_spark`` gives the result
    as a Spark DataFrame that stays on the cluster.
    """

    def __init__(self, open_reader: Callable[[], pa.RecordBatchReader],
                 open_spark: Callable[[], Any] | None = None) -> None:
        self._open_reader = open_reader
        self._open_spark = open_spark

    def with_feature_order(self, order: Sequence[str]) -> RetrievalJob:
        """This job with its last ``len(order)`` (feature) columns in ``order``; the entity
        columns before them stay as they are."""
        order = list(order)

        def open_reordered() -> pa.RecordBatchReader:
            import pyarrow as pa

            reader = self._open_reader()
            names = list(reader.schema.names)
            columns = names[:len(names) - len(order)] + order
            if columns == names:
                return reader
            schema = pa.schema([reader.schema.field(name) for name in columns])
            return pa.RecordBatchReader.from_batches(
                schema, (batch.select(columns) for batch in reader))

        open_spark = self._open_spark

        def spark_reordered() -> Any:
            frame = self.to_spark()
            names = list(frame.columns)
            return frame.select(*names[:len(names) - len(order)], *order)

        return RetrievalJob(open_reordered, spark_reordered if open_spark is not None else None)

    def to_spark(self) -> Any:
        """The result as a ``pyspark.sql.DataFrame``, not collected to the driver: the
        entity columns then the features, in entity row order when it is read in order.
        Only the Spark offline engine (``offline: {engine: spark}``) gives one."""
        from headwater.errors import HeadwaterError

        if self._open_spark is None:
            raise HeadwaterError(
                "to_spark(): this training frame comes from the DuckDB offline engine, which "
                "has no Spark DataFrame. Fix: set 'offline: {engine: spark}' in "
                "headwater.yaml, or use to_arrow()/to_pandas()/to_batches()")
        return self._open_spark()

    def to_reader(self) -> pa.RecordBatchReader:
        """A streaming reader over the result's record batches."""
        return self._open_reader()

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        """Iterate over the result in Arrow record batches."""
        yield from self._open_reader()

    def to_arrow(self) -> pa.Table:
        """The whole result as one Arrow table."""
        return self._open_reader().read_all()

    def to_pandas(self) -> Any:
        """The whole result as a pandas DataFrame (timestamps stay timezone-aware UTC)."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        """The whole result as a polars DataFrame."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def to_parquet(self, path: str | os.PathLike[str]) -> int:
        """Stream the result into a Parquet file; returns the number of rows written."""
        import pyarrow.parquet as pq

        reader = self._open_reader()
        rows = 0
        with pq.ParquetWriter(os.fspath(path), reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows
