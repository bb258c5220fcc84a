"""The prediction log: every online prediction, written as Parquet without blocking requests.

``/predict`` hands each answered request to :meth:`PredictionLog.log` as a
:class:`PredictionRecord`, which only puts it on a bounded queue. One background writer
thread collects records and writes them when ``flush_rows`` rows are pending or
``flush_seconds`` after the first pending one (default 1,000 rows / 1 s), and everything
on :meth:`PredictionLog.flush` and :meth:`PredictionLog.close` (the server's shutdown).

Files: ``<root>/<model>/date=YYYY-MM-DD/<uuid>.parquet`` (``root`` is
``settings.predictions_path``; the date is the UTC date of the prediction). Each file is
written as a hidden temp file in the same folder, fsynced, then renamed, so a reader (DuckDB:
``read_parquet('<root>/churn/*/*.parquet', hive_partitioning=true, union_by_name=true)``)
never sees half a file. Columns, one row per entity row: ``request_id``, ``logged_at``
(UTC), ``model``, ``model_version``, the entity join keys, the model's input columns
(features, then request fields), other request fields, ``prediction`` and, for classifiers,
``probability``. An entity, feature or request column named like one of those is stored
as ``input__<name>``.

Full queue: the request is not blocked. Its rows are dropped from the log, counted in
:attr:`PredictionLog.dropped_rows` (the server exposes it as a metric) and a warning is
logged at most every 10 s. A serving process should never wait on the disk; a log that
cannot keep up is an operations problem the metric shows. Rows that fail to be written (a
full disk) are counted in :attr:`failed_rows` and logged as errors.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
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
RESERVED = ("request_id", "logged_at", "model", "model_version", "prediction", "probability")

_log = logging.getLogger("headwater.inference.log")


@dataclass(frozen=True)
class PredictionRecord:
    """One ``/predict`` request: ``entities`` and ``request`` are columns (one value per
    entity row) of join keys and of request fields that are not model inputs; ``inputs``
    is the table the model saw; ``logged_at_us`` is epoch microseconds (UTC)."""

    request_id: str
    logged_at_us: int
    model: str
    version: int
    entities: dict[str, list[Any]]
    inputs: pa.Table
    request: dict[str, list[Any]]
    predictions: np.ndarray
    probabilities: np.ndarray | None

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
        for name in self.inputs.column_names:
            _put(columns, name, self.inputs.column(name))
        for name, values in self.request.items():
            _put(columns, name, _array(values))
        columns["prediction"] = pa.array(self.predictions)
        if self.probabilities is not None:
            columns["probability"] = pa.array(self.probabilities, pa.float64())
        return pa.table(columns)


def _put(columns: dict[str, Any], name: str, values: Any) -> None:
    while name in columns or name in RESERVED:
        name = f"input__{name}"
    columns[name] = values


def _array(values: list[Any]) -> pa.Array:
    """Values as Arrow; values of mixed types (which JSON allows) as their text."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()


class PredictionLog:
    """The log writer over ``root`` (see the module docstring). Thread-safe. The writer
    thread runs from :meth:`start` (the server's start-up) to :meth:`close`; records logged
    before it starts wait in the queue (``flush`` and ``close`` start it to drain them)."""

    def __init__(self, root: Path, *, flush_rows: int = FLUSH_ROWS,
                 flush_seconds: float = FLUSH_SECONDS, max_queue: int = MAX_QUEUE) -> None:
        self.root = Path(root)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._warned_at = float("-inf")
        self.written_rows = 0
        self.dropped_rows = 0
        self.failed_rows = 0
        self.files_written = 0

    def log(self, record: PredictionRecord) -> bool:
        """Queue ``record`` for writing; False (rows counted as dropped) when the queue is
        full or the log is closed. Never blocks."""
        if self._closed:
            self.dropped_rows += record.rows
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped_rows += record.rows
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = now
                _log.warning("prediction log queue full (%d requests): %d rows dropped so "
                             "far. Fix: give the writer a faster disk, or raise max_queue",
                             self._queue.maxsize, self.dropped_rows)
            return False
        return True

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write everything queued so far; True when done within ``timeout`` seconds."""
        if self._closed:
            return self._thread is None
        self.start()
        request = _Flush()
        self._queue.put(request, timeout=timeout)
        return request.done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Write everything queued and stop the writer (idempotent)."""
        if self._closed and self._thread is None:
            return
        self._closed = True
        self.start()
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            _log.error("the prediction log writer did not drain its queue within %s s; "
                       "%d queued requests are not written", timeout, self._queue.qsize())
            return
        thread.join(timeout)
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
        pending: list[PredictionRecord] = []
        rows = 0
        deadline = 0.0
        while True:
            timeout = None if not pending else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None  # the oldest pending record waited flush_seconds
            if isinstance(item, PredictionRecord):
                if not pending:
                    deadline = time.monotonic() + self.flush_seconds
                pending.append(item)
                rows += item.rows
                if rows < self.flush_rows:
                    continue
            self._write(pending)
            pending, rows = [], 0
            if isinstance(item, _Flush):
                item.done.set()
            elif item is _STOP:
                return

    def _write(self, records: list[PredictionRecord]) -> None:
        if not records:
            return
        import pyarrow as pa

        groups: dict[tuple[str, str], list[PredictionRecord]] = defaultdict(list)
        for record in records:
            day = datetime.fromtimestamp(record.logged_at_us / 1e6, UTC).date().isoformat()
            groups[(record.model, day)].append(record)
        for (model, day), group in groups.items():
            count = sum(r.rows for r in group)
            try:
                tables = [r.to_arrow() for r in group]
                try:
                    parts = [pa.concat_tables(tables, promote_options="permissive")]
                except (pa.ArrowInvalid, pa.ArrowTypeError):  # versions with other types
                    parts = tables
                for table in parts:
                    self._write_file(self.root / model / f"date={day}", table)
                self.written_rows += count
            except (OSError, pa.ArrowException) as exc:
                self.failed_rows += count
                _log.error("could not write %d prediction log rows of model '%s' under %s: "
                           "%s", count, model, self.root, exc)
            except Exception:  # noqa: BLE001  the writer thread's boundary: keep it alive
                self.failed_rows += count
                _log.exception("unexpected error writing the prediction log of '%s'", model)

    def _write_file(self, folder: Path, table: pa.Table) -> None:
        import pyarrow.parquet as pq

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
            temp.unlink(missing_ok=True)
        self.files_written += 1
