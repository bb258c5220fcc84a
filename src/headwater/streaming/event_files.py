"""The offline copy of pushed and streamed events: Parquet files partitioned by event date,
and the ingestion order (``__hw_seq``) of every event.

Events of a push or stream source land in ``<batch folder>/date=YYYY-MM-DD/`` (their event
date, UTC), one file per date and batch, named like every pushed file
(:func:`~headwater.offline.file_order.push_file_name`), so the offline reader orders them by
push time after the source's other files, whatever their partition.

**Ingestion order.** An event's ``__hw_seq`` is ``(ms << 22) | row``: ``ms`` is the push time
in milliseconds that also names its file (``push-<ms * 10**6>-<tag>.parquet``) and ``row``
its position in the file. So the online tiles order ties as the offline join does: by file
push time, then row. A process hands out strictly increasing milliseconds (:class:`SeqClock`),
one per file, and a file holds at most 2**22 rows (more are split). Two processes may take the
same millisecond; their events then share high bits, and ``last`` ties between them (same
entity, event and created time, ingested in the same millisecond by two consumers) are
broken by the file's random tag offline but not online: a documented limit.

**Exactly-once files.** A stream consumer writes a batch's files under hidden *pending*
names (``.push-...parquet.pending-<consumer>``, which no reader reads), commits the online
effect together with one marker per file (``file:<name>``), then renames them visible.
:func:`recover_pending` runs at start: a pending file whose marker is committed is renamed
(whoever wrote it, once it has not changed for the claim timeout), one of this consumer
without a marker is deleted (its events were not acknowledged and will be delivered again).
A running consumer sweeps up the same way every claim timeout, so the committed files of a
consumer that died and never came back become visible too.

Events another consumer committed after this one checked (it took them over past the claim
timeout) are in that consumer's files. The commit that finds them marked calls back before
it commits (``on_taken`` of :func:`~headwater.streaming.ingest.send_online`) and the
pending files are rewritten without them (:func:`rewrite_pending`), so a committed marker's
file holds exactly the events its commit applied, even when its consumer dies right after.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from headwater.errors import StoreUnavailableError
from headwater.offline.file_order import push_file_name
from headwater.streaming.parquet_append import (
    PushFolder,
    check_name,
    partition_name,
    sync_folder,
    temp_path,
    write_all_durably,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

ROW_BITS = 22
"""Bits of ``__hw_seq`` for the row in its file: at most 2**22 rows per file."""
_DAY_US = 86_400_000_000
_PENDING = ".pending-"


class SeqClock:
    """Strictly increasing push times in milliseconds, one per file (thread-safe)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        """A millisecond later than any handed out before, and not before now."""
        with self._lock:
            self._last = max(time.time_ns() // 1_000_000, self._last + 1)
            return self._last


CLOCK = SeqClock()


@dataclass(frozen=True)
class EventFile:
    """One file of a batch: its rows (indices into the batch), its push time in ms and its
    path relative to the batch folder."""

    rows: np.ndarray
    ms: int
    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def marker(self) -> str:
        """The online marker committed with the file's events (see the module docstring)."""
        return marker_of(self.name)


def marker_of(name: str) -> str:
    """The marker of the file ``name``."""
    return f"file:{name}"


def plan_files(times: pa.ChunkedArray | pa.Array, clock: SeqClock = CLOCK
               ) -> tuple[list[EventFile], np.ndarray]:
    """Split a batch by event date (``times``: timestamp[us, UTC]) into files and give every
    event its ``__hw_seq``; returns the files and the seq column (int64, batch order)."""
    import numpy as np
    import pyarrow as pa

    micros = np.asarray(times.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)
    days = micros // _DAY_US
    seq = np.empty(len(micros), np.int64)
    files: list[EventFile] = []
    unique, inverse = np.unique(days, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(unique)))[:-1]
    for day, rows in zip(unique.tolist(), np.split(order, bounds), strict=True):
        for start in range(0, len(rows), 1 << ROW_BITS):
            chunk = rows[start:start + (1 << ROW_BITS)]
            ms = clock.next()
            seq[chunk] = (ms << ROW_BITS) + np.arange(len(chunk), dtype=np.int64)
            name = push_file_name(ms * 1_000_000, uuid.uuid4().hex[:8])
            files.append(EventFile(chunk, ms, (partition_name(day), name)))
    return files, seq


def plan_seq(count: int, clock: SeqClock = CLOCK) -> np.ndarray:
    """``__hw_seq`` for events that get no offline file (pushed online only)."""
    import numpy as np

    seq = np.empty(count, np.int64)
    for start in range(0, count, 1 << ROW_BITS):
        size = min(count - start, 1 << ROW_BITS)
        seq[start:start + size] = (clock.next() << ROW_BITS) + np.arange(size, dtype=np.int64)
    return seq


def write_files(target: PushFolder, table: pa.Table, files: Iterable[EventFile], *,
                pending: str | None = None) -> list[Path]:
    """Write each file's rows of ``table`` (the batch laid out as the source's files), all
    or none (:func:`~headwater.streaming.parquet_append.write_all_durably`).

    Without ``pending`` the files are renamed visible once all are written; with it (the
    consumer's name) they stay under their pending names for :func:`publish`. Returns the
    paths written (final or pending)."""
    import pyarrow as pa

    files = list(files)
    finals = [check_name(target, file.parts) for file in files]  # every name before any I/O
    temps = [temp_path(final) if pending is None else pending_path(final, pending)
             for final in finals]
    write_all_durably(((final, temp, table.take(pa.array(file.rows)))
                       for final, temp, file in zip(finals, temps, files, strict=True)),
                      rename=pending is None)
    return finals if pending is None else temps


def rewrite_pending(table: pa.Table, files: Sequence[EventFile],
                    paths: Sequence[Path]) -> list[Path]:
    """Replace each pending file of ``paths`` (written by :func:`write_files` for
    ``files``, in order) with the rows of its file in ``files`` now (fewer: those of events
    another consumer committed first are dropped), and delete one left with no row.
    Returns the pending files that remain. Each file is replaced atomically, after its new
    content is durable: a failure leaves every file whole, old or new, and raises, so the
    commit it was called from does not run (its files are deleted at recovery and its
    events delivered again)."""
    import pyarrow as pa

    kept = [(file, path) for file, path in zip(files, paths, strict=True) if len(file.rows)]
    write_all_durably(((path, temp_path(final_path(path)), table.take(pa.array(file.rows)))
                       for file, path in kept), replacing=True)
    emptied = [path for file, path in zip(files, paths, strict=True) if not len(file.rows)]
    discard(emptied)
    for folder in dict.fromkeys(path.parent for path in emptied):
        sync_folder(folder)  # durably gone before the commit marks them
    return [path for _, path in kept]


def pending_path(final: Path, consumer: str) -> Path:
    """Where ``consumer`` keeps the file ``final`` until its events are committed."""
    return final.parent / f".{final.name}{_PENDING}{consumer}"


def final_path(pending: Path) -> Path:
    """The visible path of a pending file."""
    name = pending.name[1:pending.name.index(_PENDING)]
    return pending.parent / name


def publish(paths: Iterable[Path], *, missing_ok: bool = False) -> None:
    """Rename pending files visible, durably. A file another process already renamed (its
    marker was seen committed) is fine; with ``missing_ok`` so is one that is gone (its
    writer, alive after all, deleted it: another consumer had committed all of its
    events)."""
    folders = set()
    for path in paths:
        try:
            os.replace(path, final_path(path))
        except FileNotFoundError:
            if not (missing_ok or final_path(path).exists()):
                raise
        except OSError as exc:
            raise StoreUnavailableError(f"cannot rename {path} visible: {exc}. Fix: check "
                                        "that the folder is writable") from exc
        folders.add(path.parent)
    for folder in folders:
        sync_folder(folder)


def discard(paths: Iterable[Path]) -> None:
    """Delete pending files whose events turned out to be applied already."""
    for path in paths:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover_pending` did: files renamed visible and files deleted."""

    published: int
    deleted: int


def recover_pending(folder: Path, consumer: str,
                    committed: Callable[[list[str]], set[str]], *,
                    others_after: float = 0.0, own: bool = True) -> Recovery:
    """Finish the pending files under ``folder`` (module docstring). ``committed`` takes
    markers and returns those present online.

    Another consumer's files are taken only once unchanged for ``others_after`` seconds:
    a live consumer renames its committed files within moments, so an older one was left
    by a consumer that died after its commit. With ``own`` False this consumer's files are left
    alone (a running consumer sweeping up after dead ones: its own are in flight)."""
    mine = f"{_PENDING}{consumer}"
    oldest = time.time() - others_after
    found = [p for p in folder.glob(f"date=*/.push-*.parquet{_PENDING}*")
             if (p.name.endswith(mine) and own)
             or (not p.name.endswith(mine) and _unchanged_since(p, oldest))]
    if not found:
        return Recovery(0, 0)
    markers = {p: marker_of(final_path(p).name) for p in found}
    present = committed(sorted(set(markers.values())))
    done = [p for p in found if markers[p] in present]
    publish([p for p in done if p.name.endswith(mine)])
    publish([p for p in done if not p.name.endswith(mine)], missing_ok=True)
    stale = [p for p in found if markers[p] not in present and p.name.endswith(mine)]
    for path in stale:
        path.unlink(missing_ok=True)
    return Recovery(len(done), len(stale))


def _unchanged_since(path: Path, moment: float) -> bool:
    """``path`` is a file last changed at or before ``moment`` (False once it is gone)."""
    try:
        return path.is_file() and path.stat().st_mtime <= moment
    except FileNotFoundError:
        return False
