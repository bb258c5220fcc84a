"""The offline engine protocol.

An offline engine reads sources and builds point-in-time correct training frames. The
DuckDB engine (``duckdb.py``) is the default; every engine implements this protocol and
passes the same conformance and property suites.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from headwater.definitions import FeatureView, Source
from headwater.definitions.selection import ViewRequest

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.offline.retrieval import RetrievalJob


LATEST_TS = "__hw_ts"
"""The event-time column of :meth:`OfflineEngine.latest_rows`."""
LATEST_CREATED = "__hw_created"
"""The created-time column of :meth:`OfflineEngine.latest_rows`."""
EVENT_SEQ = "__hw_seq"
"""The ingestion-order column of :meth:`OfflineEngine.read_events` (int64, unique)."""


class OfflineEngine(Protocol):
    """What the feature store needs from an offline engine."""

    def source_schema(self, source: Source) -> pa.Schema:
        """The Arrow schema of a source's rows, read without scanning all the data.

        Raises DataError when the source cannot be read (missing file, bad query) and
        StoreUnavailableError when its database cannot be reached."""
        ...

    def get_historical_features(
        self,
        entity_df: Any,
        requests: Sequence[ViewRequest],
        *,
        timestamp_field: str | None = None,
        tables: Mapping[str, Source] | None = None,
    ) -> RetrievalJob:
        """Join each request's features to the entity rows, point-in-time correct.

        ``entity_df`` is a pandas or polars DataFrame, an Arrow table, or a SQL query string;
        a query may name each entry of ``tables`` (a registered view name -> its source) as
        a table. ``timestamp_field`` names the entity frame's time column (default:
        ``event_timestamp``, or its only timestamp column). The job is lazy: nothing runs
        until the result is asked for."""
        ...

    def latest_rows(self, view: FeatureView, start: datetime,
                    end: datetime) -> pa.RecordBatchReader:
        """For materialization: per entity, the view's row with ``start <= ts <= end`` that
        the point-in-time rule would pick at ``end`` (greatest ts, created ts, ingestion
        order), streamed in batches with bounded memory.

        Columns: the view's join keys, ``__hw_ts`` (timestamp[us, UTC]), ``__hw_created``
        (timestamp[us, UTC], null when the source has no created column or value), then
        the view's features in schema order, cast to their declared dtypes."""
        ...

    def read_events(self, view: FeatureView, start: datetime,
                    end: datetime) -> pa.RecordBatchReader:
        """For tile backfills and streaming ingest: the view's events with
        ``start <= ts < end``, in ingestion order, streamed in batches with bounded memory.

        Columns: the view's join keys (as the source stores them), ``__hw_ts`` and
        ``__hw_created`` (timestamp[us, UTC], created null when the source has none),
        ``__hw_seq`` (int64: the ingestion order the point-in-time join uses, unique and
        increasing with file order then row position, the same for any range), then the
        columns of the view's ``schema`` cast to their declared dtypes."""
        ...

    def latest_time(self, source: Source) -> datetime | None:
        """The greatest event time of ``source``'s rows (UTC), or None when it has none,
        without reading the rows out."""
        ...

    def read_source(self, source: Source, columns: Sequence[str] | None = None) -> pa.Table:
        """All rows of a FileSource or SQLSource, in ingestion order, as one Arrow table
        (``columns`` only, in that order, when given; every column otherwise).

        The source's time columns come back as ``timestamp[us, UTC]`` by the same rules as
        the point-in-time join (naive values are UTC, ISO strings parsed); other columns
        as the source stores them. DataError names a missing column or unreadable data.
        For label sources and other frames small enough to hold in memory."""
        ...

    def close(self) -> None: ...


__all__ = ["EVENT_SEQ", "LATEST_CREATED", "LATEST_TS", "OfflineEngine", "ViewRequest"]
