"""The prediction log: every online prediction, written as Parquet without blocking requests.

``/predict`` hands each answered request to :meth:`PredictionLog.log` as a
:class:`PredictionRecord`, which only appends it to a bounded queue. One background writer
thread collects records and writes them when ``flush_rows`` rows are pending, else every
``flush_seconds`` (default 1,000 rows / 1 s), and everything on
:meth:`PredictionLog.flush` and :meth:`PredictionLog.close` (the server's shutdown).

Files: ``<root>/<model>/date=YYYY-MM-DD/<uuid>.parquet`` (``root`` is
``settings.predictions_path``; the date is the UTC date of the prediction). Each file is
written as a hidden temp file in the same folder, fsynced, then renamed, so a reader (DuckDB:
``read_parquet('<root>/churn/*/*.parquet', hive_partitioning=true, union_by_name=true)``)
never sees half a file. Columns, one row per entity row: ``request_id``, ``logged_at``
(UTC), ``model``, ``model_version``, the entity join keys, the model's input columns
(features, then request fields), other request fields, ``prediction`` and, for classifiers,
``probability``. An entity, feature or request column named like one of those, or like
an earlier column, is stored as ``input__<name>`` (:func:`logged_name`).

Full queue: the request is not blocked. Its rows are dropped from the log, counted in
:attr:`PredictionLog.dropped_rows` (the server exposes it as a metric) and a warning is
logged at most every 10 s. A serving process should never wait on the disk; a log that
cannot keep up is an operations problem the metric shows. Rows that fail to be written (a
full disk) are counted in :attr:`failed_rows` and logged as errors.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Collection
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

FLUSH_ROWS = 1_000
FLUSH_SECONDS = 1.0
MAX_QUEUE = 10_000
"""Records (requests) waiting for the writer, at most."""
WARN_EVERY_SECONDS = 10.0
_FIX = ("make the folder writable and free space on its disk (the 'predictions:' setting of "
        "headwater.yaml names the folder)")
RESERVED = ("request_id", "logged_at", "model", "model_version", "prediction", "probability")

_log = logging.getLogger("headwater.inference.log")


@dataclass(frozen=True)
class PredictionRecord:
    """One ``/predict`` request: ``entities``, ``inputs`` and ``request`` are columns (one
    value per entity row) of join keys, of the model's input columns (typed by
    ``input_schema``; inferred when None) and of request fields that are not model inputs;
    ``logged_at_us`` is epoch microseconds (UTC). Plain values, not Arrow: the request only
    hands them over, the writer builds each column once for many requests."""

    request_id: str
    logged_at_us: int
    model: str
    version: int
    entities: dict[str, list[Any]]
    inputs: dict[str, list[Any]]
    request: dict[str, list[Any]]
    predictions: np.ndarray
    probabilities: np.ndarray | None
    input_schema: pa.Schema | None = None

    def input_type(self, name: str) -> pa.DataType | None:
        if self.input_schema is None or name not in self.input_schema.names:
            return None
        return self.input_schema.field(name).type

    @property
    def rows(self) -> int:
        return len(self.predictions)

    def to_arrow(self) -> pa.Table:
        """The record's log rows (see the module docstring for the columns)."""
        import pyarrow as pa

        n = self.rows
        columns: dict[str, pa.Array | pa.ChunkedArray] = {
            "request_id": pa.array([self.request_id] * n, pa.string()),
            "logged_at": pa.array([self.logged_at_us] * n, pa.int64()).cast(
                pa.timestamp("us", tz="UTC")),
            "model": pa.array([self.model] * n, pa.string()),
            "model_version": pa.array([self.version] * n, pa.int64()),
        }
        for name, values in self.entities.items():
            _put(columns, name, _array(values))
        for name, values in self.inputs.items():
            _put(columns, name, _array(values, self.input_type(name)))
        for name, values in self.request.items():
            _put(columns, name, _array(values))
        columns["prediction"] = pa.array(self.predictions)
        if self.probabilities is not None:
            columns["probability"] = pa.array(self.probabilities, pa.float64())
        return pa.table(columns)


def logged_name(name: str, taken: Collection[str]) -> str:
    """The log column that entity, input or request column ``name`` is stored under, given
    the columns ``taken`` before it: ``name`` itself unless it is taken or one of
    :data:`RESERVED`, else with ``input__`` put in front as often as needed (``model`` is
    stored as ``input__model``; a key and an input both named ``x`` as ``x`` and
    ``input__x``). The log adds columns in its order: entity keys, model inputs, other
    request fields."""
    while name in taken or name in RESERVED:
        name = f"input__{name}"
    return name


def _put(columns: dict[str, Any], name: str, values: Any) -> None:
    columns[logged_name(name, columns)] = values


def _array(values: list[Any], kind: pa.DataType | None = None) -> pa.Array:
    """Values as Arrow (of type ``kind`` when given); values of mixed types (which JSON
    allows) as their text."""
    import pyarrow as pa

    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _tables(records: list[PredictionRecord]) -> list[pa.Table]:
    """The log tables of one model's records: one table, built column by column over all
    the records (the writer holds the GIL while it works, and per-record tables cost the
    requests served meanwhile far more), or, when their columns differ (another version or
    other request fields), a table per record, concatenated where the types allow."""
    import numpy as np
    import pyarrow as pa

    first = records[0]
    same = all(r.version == first.version and r.input_schema == first.input_schema
               and r.inputs.keys() == first.inputs.keys()
               and r.entities.keys() == first.entities.keys()
               and r.request.keys() == first.request.keys()
               and (r.probabilities is None) == (first.probabilities is None)
               for r in records)
    if not same:
        tables = [r.to_arrow() for r in records]
        try:
            return [pa.concat_tables(tables, promote_options="permissive")]
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # versions with other types
            return tables
    counts = [r.rows for r in records]
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "request_id": pa.array([r.request_id for r in records], pa.string()).take(
            pa.array(np.repeat(np.arange(len(records)), counts))),
        "logged_at": pa.array(np.repeat([r.logged_at_us for r in records], counts),
                              pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "model": pa.array([first.model] * sum(counts), pa.string()),
        "model_version": pa.array([first.version] * sum(counts), pa.int64()),
    }
    for name in first.entities:
        _put(columns, name, _array([v for r in records for v in r.entities[name]]))
    for name in first.inputs:
        _put(columns, name, _array([v for r in records for v in r.inputs[name]],
                                   first.input_type(name)))
    for name in first.request:
        _put(columns, name, _array([v for r in records for v in r.request[name]]))
    columns["prediction"] = pa.array(np.concatenate([r.predictions for r in records]))
    if first.probabilities is not None:
        columns["probability"] = pa.array(
            np.concatenate([r.probabilities for r in records]), pa.float64())
    return [pa.table(columns)]


class PredictionLog:
    """The log writer over ``root`` (see the module docstring). Thread-safe. The writer
    thread runs from :meth:`start` (the server's start-up) to :meth:`close`; records logged
    before it starts wait in the queue (``flush`` and ``close`` start it to drain them).

    The queue is a deque the writer drains in bulk: a request appends to it and wakes the
    writer only when ``flush_rows`` rows are pending, so serving does not pay a thread
    switch per request; otherwise the writer wakes every ``flush_seconds``."""

    def __init__(self, root: Path, *, flush_rows: int = FLUSH_ROWS,
                 flush_seconds: float = FLUSH_SECONDS, max_queue: int = MAX_QUEUE) -> None:
        self.root = Path(root)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_queue = max_queue
        self._queue: deque[PredictionRecord] = deque()
        self._pending_rows = 0
        self._wake = threading.Event()
        self._flushes: list[threading.Event] = []
        self._flush_lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._warned_at = float("-inf")
        self.written_rows = 0
        self.dropped_rows = 0
        self.failed_rows = 0
        self.files_written = 0
        self._retry: list[tuple[str, str, pa.Table]] = []
        self._append_lock = threading.Lock()

    @property
    def retry_rows(self) -> int:
        """Rows a failed write kept to try again at the next flush (a full or read-only
        disk): not written yet, not lost."""
        return sum(table.num_rows for _, _, table in self._retry)

    def log(self, record: PredictionRecord) -> bool:
        """Queue ``record`` for writing; False (rows counted as dropped) when the queue is
        full or the log is closed. Never blocks."""
        with self._append_lock:  # close() drains under it: nothing slips in after
            return self._append(record)

    def _append(self, record: PredictionRecord) -> bool:
        if self._closed:
            self.dropped_rows += record.rows
            return False
        if len(self._queue) >= self.max_queue:
            self.dropped_rows += record.rows
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = now
                _log.warning("prediction log queue full (%d requests): %d rows dropped so "
                             "far. Fix: give the writer a faster disk, or raise max_queue",
                             self.max_queue, self.dropped_rows)
            return False
        self._queue.append(record)
        self._pending_rows += record.rows
        if self._pending_rows >= self.flush_rows and not self._wake.is_set():
            self._wake.set()
        return True

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write everything queued so far; True when done within ``timeout`` seconds."""
        if self._closed:
            return self._thread is None
        self.start()
        done = threading.Event()
        with self._flush_lock:
            self._flushes.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Write everything queued and stop the writer (idempotent)."""
        if self._closed and self._thread is None:
            return
        with self._append_lock:
            self._closed = True
        self.start()
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            _log.error("the prediction log writer did not finish within %s s; %d queued "
                       "requests may not be written", timeout, len(self._queue))
            return
        self._thread = None

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="headwater-prediction-log",
                                          daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            stopping = self._stopping
            with self._flush_lock:
                flushes, self._flushes = self._flushes, []
            self._pending_rows = 0
            records = []
            while self._queue:
                records.append(self._queue.popleft())
            try:
                self._write(records)
            except Exception:  # noqa: BLE001  the writer thread's boundary: keep it alive
                self.failed_rows += sum(r.rows for r in records)
                _log.exception("unexpected error writing the prediction log under %s",
                               self.root)
            for done in flushes:
                done.set()
            if stopping:
                for model, _, table in self._retry:
                    self._fail(table.num_rows, model, OSError("still failing at shutdown"))
                self._retry = []
                return

    def _write(self, records: list[PredictionRecord]) -> None:
        """Write ``records`` (and tables a failed write left to retry), a file per model,
        day and shape. A table that cannot be written (a full disk) is kept and tried again
        at the next flush, up to ``max_queue`` tables; beyond that its rows are counted as
        failed and logged."""
        import pyarrow as pa

        pending, self._retry = self._retry, []
        groups: dict[tuple[str, str], list[PredictionRecord]] = defaultdict(list)
        for record in records:
            day = datetime.fromtimestamp(record.logged_at_us / 1e6, UTC).date().isoformat()
            groups[(record.model, day)].append(record)
        for (model, day), group in groups.items():
            try:
                pending.extend((model, day, table) for table in _tables(group))
            except pa.ArrowException as exc:  # values Arrow cannot hold: nothing to retry
                self._fail(sum(r.rows for r in group), model, exc)
        for model, day, table in pending:
            try:
                self._write_file(self.root / model / f"date={day}", table)
                self.written_rows += table.num_rows
            except (OSError, pa.ArrowException) as exc:
                if len(self._retry) < self.max_queue:
                    self._retry.append((model, day, table))
                    _log.error("could not write %d prediction log rows of model '%s' under "
                               "%s (kept, tried again at the next flush): %s. Fix: %s",
                               table.num_rows, model, self.root, exc, _FIX)
                else:
                    self._fail(table.num_rows, model, exc)

    def _fail(self, rows: int, model: str, exc: BaseException) -> None:
        self.failed_rows += rows
        _log.error("could not write %d prediction log rows of model '%s' under %s; they are "
                   "lost: %s. Fix: %s", rows, model, self.root, exc, _FIX)

    def _write_file(self, folder: Path, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        from headwater.streaming.parquet_append import sync_folder

        folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        temp = folder / f".{name}.parquet.tmp"
        final = folder / f"{name}.parquet"
        try:
            with open(temp, "wb") as out:
                pq.write_table(table, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
        finally:
            with suppress(OSError):  # EROFS even for a missing file: keep the first error
                temp.unlink(missing_ok=True)
        self.files_written += 1
        try:
            sync_folder(folder)  # the rename itself survives a crash
        except OSError as exc:  # the file is visible: retrying would log its rows twice
            _log.warning("could not fsync %s after writing %s: %s", folder, final.name, exc)



def read_log(root: Path, model: str, start: datetime | None = None,
             end: datetime | None = None) -> pa.Table:
    """The logged predictions of ``model`` with ``start <= logged_at < end`` (either bound
    may be None), ordered by ``logged_at``: every file under ``root/<model>/``, columns
    united by name (a later version's new inputs are null in older rows), without the
    ``date`` partition column. An unknown model or an empty range gives no rows."""
    import duckdb
    import pyarrow as pa

    from headwater.definitions.base import check_identifier

    check_identifier("prediction log", "model", model)
    folder = Path(root) / model
    if not any(folder.glob("date=*/*.parquet")):
        return pa.table({"request_id": pa.array([], pa.string()),
                         "logged_at": pa.array([], pa.timestamp("us", tz="UTC"))})
    where, params = [], []
    for bound, op in ((start, ">="), (end, "<")):
        if bound is not None:
            where.append(f"logged_at {op} ?")
            params.append(bound if bound.tzinfo else bound.replace(tzinfo=UTC))  # naive: UTC
    pattern = str(folder / "date=*" / "*.parquet").replace("'", "''")
    query = (f"SELECT * EXCLUDE (date) FROM read_parquet('{pattern}', hive_partitioning = true, "
             "union_by_name = true)"
             + (f" WHERE {' AND '.join(where)}" if where else "")
             + " ORDER BY logged_at, request_id")
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        table: pa.Table = connection.sql(query, params=params).to_arrow_table()
    return table
