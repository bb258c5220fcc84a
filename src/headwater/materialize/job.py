"""Materialization jobs: copy each view's latest rows in a time range to the online store.

A job streams the offline engine's ``latest_rows`` in Arrow batches (memory bounded by the
batch size), encodes each batch and writes it in one store call. Online writes are
compare-and-set on event time, so a rerun (after a kill, or twice) converges to the same
online state and never replaces a newer value. A view's watermark is recorded in the
registry only after all of its batches are written, so ``materialize_incremental`` after a
kill redoes the interrupted view and skips the finished ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from headwater.definitions import FeatureView
from headwater.materialize.encode import encode_batch
from headwater.offline.base import OfflineEngine
from headwater.online.base import OnlineStore

Progress = Callable[[str, int], None]
"""Called after each written batch with the view name and the rows in that batch."""


@dataclass(frozen=True)
class MaterializeResult:
    """What one view's materialization wrote: ``rows`` counts the records stored (a record
    older than the one already online is skipped and not counted)."""

    view: str
    start: datetime
    end: datetime
    rows: int
    seconds: float


def materialize_view(offline: OfflineEngine, online: OnlineStore, view: FeatureView,
                     start: datetime, end: datetime, *, generation: int,
                     progress: Progress | None = None) -> MaterializeResult:
    """Write the latest row per entity with ``start <= ts <= end`` of ``view`` online, as
    records of definition ``generation``."""
    began = time.perf_counter()
    rows = 0
    for batch in offline.latest_rows(view, start, end):
        if batch.num_rows == 0:
            continue
        keys, records = encode_batch(view, generation, batch)
        stored = online.write(view.name, keys, records)
        rows += stored
        if progress is not None:
            progress(view.name, stored)
    return MaterializeResult(view.name, start, end, rows, time.perf_counter() - began)
