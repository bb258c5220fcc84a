"""Pacing CPython's cyclic garbage collector while a stream consumer runs.

A consumer allocates tens of thousands of short-lived objects per batch (a message per entry,
the entry's bytes, a key and a record per entity) and frees nearly all of them by reference
counting: they form no cycles. Under the default thresholds (a young-generation collection
every 700 net allocations) the collector still runs some hundred times per batch, and the
objects of a batch read ahead survive into the older generations, whose collections walk
every container the process holds (the record cache's entries, the imported modules). On the
streaming benchmark that was about a sixth of the consumer's CPU time (see below).

:func:`paced_collector` raises the young generation's threshold to :data:`YOUNG_THRESHOLD`
while at least one consumer runs in the process, and puts back the thresholds it found when
the last one ends (thresholds the application set meanwhile are replaced by those).
Collection still happens (every ``YOUNG_THRESHOLD`` net allocations, and the older
generations as before), so memory held by real cycles stays bounded.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000
"""Net allocations between young-generation collections while a consumer runs (CPython's
default is 700). On the streaming benchmark (full size, 2026-11-28, before the other changes
made that day) the consumer's CPU time was 8.1-9.9 s in four runs with the default and
6.7-8.3 s in three with this; 10,000 gave 8.2-9.0 s and 200,000 7.6 s (two runs each)."""



class _Pacing:
    """How many consumers of this process run, and the thresholds the first one found."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.found: tuple[int, int, int] | None = None


_pacing = _Pacing()


@contextmanager
def paced_collector() -> Iterator[None]:
    """Run the body with the young generation collected every :data:`YOUNG_THRESHOLD`
    net allocations (or less often, when the process asked for that already); nests and
    overlaps across threads: the thresholds found by the first are restored by the last."""
    with _pacing.lock:
        if _pacing.running == 0:
            _pacing.found = gc.get_threshold()
            young, *older = _pacing.found
            if young:  # 0: the process turned collection off; leave it so
                gc.set_threshold(max(young, YOUNG_THRESHOLD), *older)
        _pacing.running += 1
    try:
        yield
    finally:
        with _pacing.lock:
            _pacing.running -= 1
            if _pacing.running == 0 and _pacing.found is not None:
                gc.set_threshold(*_pacing.found)
                _pacing.found = None
