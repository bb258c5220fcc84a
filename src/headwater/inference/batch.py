"""Batch inference: score entities as of a time with the same features and model as
``/predict``, in chunks, to Arrow, Parquet or a table.

:func:`predict_batch` (``store.predict``) resolves the model reference once, loads that
version (its artifact's SHA-256 verified) and asks ``get_historical_features`` for the
version's feature service as it was at training (:mod:`~headwater.inference.service`):
the same point-in-time join that built its training frame. Nothing runs until the
:class:`PredictionJob` is read. Reading streams the join's record batches, regroups them
into chunks of ``chunk_rows`` rows, predicts each chunk through the one
:func:`~headwater.models.inputs.model_input` conversion, calls ``progress("predict",
rows)`` after each, and passes the scored chunks on: memory holds the entity rows (as
``get_historical_features`` does) and a chunk, never the whole result, unless it is
collected with ``to_arrow``/``to_pandas``.

Result columns: the entity frame's columns, the features (as ``get_historical_features``
names them), ``prediction``, ``probability`` (classifiers only), ``model`` and
``model_version``; rows in the entity frame's order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater.errors import DataError
from headwater.models.base import PREDICTION, PROBABILITY
from headwater.offline.entity_frame import DEFAULT_TIME_COLUMN

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.materialize.job import Progress
    from headwater.models.base import ModelVersion, Predictor
    from headwater.offline.retrieval import RetrievalJob
    from headwater.store import FeatureStore

MODEL = "model"
MODEL_VERSION = "model_version"
PROGRESS_STEP = "predict"


def predict_batch(store: FeatureStore, model_ref: str, entity_df: Any, *,
                  timestamp_field: str | None = None, chunk_rows: int = 100_000,
                  progress: Progress | None = None,
                  as_of: datetime | None = None) -> PredictionJob:
    """Batch predictions of the version ``model_ref`` names for ``entity_df`` (a frame or a
    SQL query, as for ``get_historical_features``); see the module docstring. With
    ``as_of``, every row is scored as of that one time: the rows hold only join keys (a
    time column of theirs is refused as ambiguous)."""
    from headwater.inference.service import training_service

    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise DataError(f"predict: chunk_rows must be a positive integer, got {chunk_rows!r}")
    if as_of is not None:
        entity_df = at_one_time(entity_df, as_of, timestamp_field or DEFAULT_TIME_COLUMN)
        timestamp_field = timestamp_field or DEFAULT_TIME_COLUMN
    version = store.models.get(model_ref)
    predictor = store.models.load(f"{version.model}:{version.version}")
    service = training_service(store, predictor.version)
    retrieval = store.get_historical_features(entity_df, service,
                                              timestamp_field=timestamp_field)
    names = _frame_columns(entity_df)
    if names is not None:
        _check_names(names, predictor.version)
    return PredictionJob(retrieval, predictor, chunk_rows=chunk_rows, progress=progress,
                         entity_rows=_frame_rows(entity_df))


def at_one_time(entity_df: Any, as_of: datetime, column: str) -> Any:
    """``entity_df`` with a ``column`` of ``as_of`` on every row: a SQL query is wrapped,
    a frame (or a list of dicts of join keys) becomes an Arrow table with the column
    added."""
    import pyarrow as pa

    from headwater.offline.frames import to_arrow
    from headwater.types import to_utc

    if not isinstance(as_of, datetime):
        raise DataError(f"predict: as_of must be a datetime, got {as_of!r}. Fix: pass "
                        "datetime(2024, 1, 1, tzinfo=timezone.utc)")
    moment = to_utc(as_of)
    if isinstance(entity_df, str):
        quoted = column.replace('"', '""')
        return (f'SELECT *, TIMESTAMPTZ \'{moment.isoformat()}\' AS "{quoted}" '
                f"FROM ({entity_df}) AS __hw_as_of")
    table = to_arrow(entity_df, "entity frame", dicts=True)  # key rows as dicts too
    if column in table.column_names:
        raise DataError(f"predict: the entity rows already have a '{column}' column and "
                        f"as_of={moment.isoformat()} was given. Fix: drop the column, or "
                        "omit as_of to score each row at its own time")
    stamps = pa.array([moment] * table.num_rows, pa.timestamp("us", tz="UTC"))
    return table.append_column(column, stamps)


class PredictionJob:
    """Lazy batch predictions (see the module docstring). Each read runs the join and the
    model again; ``num_rows`` is the entity frame's row count (for a SQL query, the count of
    the last complete read, None before)."""

    def __init__(self, retrieval: RetrievalJob, predictor: Predictor, *, chunk_rows: int,
                 progress: Progress | None = None, entity_rows: int | None = None) -> None:
        self._retrieval = retrieval
        self._predictor = predictor
        self._chunk_rows = chunk_rows
        self._progress = progress
        self._rows = entity_rows

    @property
    def model_version(self) -> ModelVersion:
        """The version that scores the rows (resolved when the job was made)."""
        return self._predictor.version

    @property
    def num_rows(self) -> int | None:
        return self._rows

    def to_reader(self) -> pa.RecordBatchReader:
        """A streaming reader over the scored chunks."""
        import pyarrow as pa

        reader = self._retrieval.to_reader()
        chunks = self._score(reader)
        first = next(chunks, None)
        if first is None:
            schema = self._empty(reader.schema).schema
            return pa.RecordBatchReader.from_batches(schema, iter(()))

        def batches() -> Iterator[pa.RecordBatch]:
            yield from first.to_batches()
            for chunk in chunks:
                yield from chunk.to_batches()

        return pa.RecordBatchReader.from_batches(first.schema, batches())

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        yield from self.to_reader()

    def to_arrow(self) -> pa.Table:
        """The whole result as one Arrow table."""
        return self.to_reader().read_all()

    def to_pandas(self) -> Any:
        """The whole result as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def to_parquet(self, path: str | os.PathLike[str]) -> int:
        """Stream the result into the Parquet file ``path`` (written to a temp file, then
        renamed: never half a file); returns the rows written."""
        from headwater.inference.sinks import write_parquet

        return write_parquet(self.to_reader(), path)

    def to_table(self, table: str, *, database: str | os.PathLike[str] | None = None,
                 connection: str | None = None, settings: Any = None,
                 mode: str = "create") -> int:
        """Stream the result into ``table`` in one transaction: of the DuckDB database file
        ``database`` (created if missing), or of the PostgreSQL database ``connection``
        names in ``offline.connections`` of ``settings`` (the store's). ``mode``:
        ``create``, ``append`` or ``replace``. Returns the rows written."""
        from headwater.inference.sinks import write_duckdb, write_postgres

        if (database is None) == (connection is None):
            raise DataError("to_table: give either database= (a DuckDB file) or "
                            "connection= (a name in offline.connections), not both")
        if database is not None:
            return write_duckdb(self.to_reader(), database, table, mode)
        if settings is None:
            raise DataError("to_table: connection= needs the store's settings= "
                            "(store.settings) to find the connection")
        return write_postgres(self.to_reader(), settings, str(connection), table, mode)

    # -- scoring ---------------------------------------------------------------------------

    def _score(self, reader: pa.RecordBatchReader) -> Iterator[pa.Table]:
        rows = 0
        first = True
        for chunk in _chunks(reader, self._chunk_rows):
            if first:
                _check_names(_entity_part(chunk, self._predictor), self._predictor.version)
                first = False
            scored = self._scored(chunk)
            rows += scored.num_rows
            if self._progress is not None:
                self._progress(PROGRESS_STEP, scored.num_rows)
            yield scored
        self._rows = rows

    def _scored(self, chunk: pa.Table) -> pa.Table:
        import pyarrow as pa

        version = self._predictor.version
        outputs = self._predictor.predict(chunk)
        n = chunk.num_rows
        table = chunk.append_column(PREDICTION, pa.array(outputs[PREDICTION]))
        probability = outputs.get(PROBABILITY)
        if probability is not None:
            table = table.append_column(PROBABILITY, pa.array(probability, pa.float64()))
        table = table.append_column(MODEL, pa.array([version.model] * n, pa.string()))
        return table.append_column(MODEL_VERSION, pa.array([version.version] * n, pa.int64()))

    def _empty(self, schema: pa.Schema) -> pa.Table:
        """The result of no rows: the prediction's type from the version's classes."""
        import pyarrow as pa

        version = self._predictor.version
        table = schema.empty_table()
        kind = pa.array(list(version.classes)).type if version.classes else pa.float64()
        table = table.append_column(PREDICTION, pa.array([], kind))
        if version.classes:
            table = table.append_column(PROBABILITY, pa.array([], pa.float64()))
        table = table.append_column(MODEL, pa.array([], pa.string()))
        self._rows = 0
        return table.append_column(MODEL_VERSION, pa.array([], pa.int64()))


def _chunks(reader: pa.RecordBatchReader, size: int) -> Iterator[pa.Table]:
    """The reader's rows regrouped into tables of ``size`` rows (the last may be smaller)."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= size:
            table = pa.Table.from_batches(pending, reader.schema)
            yield table.slice(0, size)
            rest = table.slice(size)
            pending = rest.to_batches()
            count = rest.num_rows
    if count:
        yield pa.Table.from_batches(pending, reader.schema)


def _entity_part(chunk: pa.Table, predictor: Predictor) -> list[str]:
    features = set(predictor.version.features)
    return [name for name in chunk.column_names if name not in features]


def _check_names(names: list[str], version: ModelVersion) -> None:
    """DataError when an input column would be shadowed by an output column."""
    taken = [n for n in names if n in (PREDICTION, PROBABILITY, MODEL, MODEL_VERSION)]
    if taken:
        raise DataError(f"predict: the entity frame has a column '{taken[0]}', which the "
                        f"predictions of model '{version.model}' add. Fix: rename or drop it")


def _frame_columns(entity_df: Any) -> list[str] | None:
    if isinstance(entity_df, str):
        return None
    names = getattr(entity_df, "column_names", None)
    if names is None:
        names = getattr(entity_df, "columns", None)
    return None if names is None else [str(n) for n in names]


def _frame_rows(entity_df: Any) -> int | None:
    if isinstance(entity_df, str):
        return None
    rows = getattr(entity_df, "num_rows", None)
    if isinstance(rows, int):
        return rows
    try:
        return len(entity_df)
    except TypeError:
        return None

