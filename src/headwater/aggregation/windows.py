"""Window arithmetic: granularities, tile starts and the tiles a read at time ``t`` merges.

All times are integer microseconds since the epoch. A window ``W`` with granularity ``h`` (which
must divide ``W``) has, at time ``t``, the value over the events ``e`` with
``floor_h(t - W) <= e.ts < t``: the tail is aligned to ``h`` and the head excludes ``t``, so an
event never sees itself. Online, that is the full tiles ``[a, a + h)`` for
``a = floor_h(t - W), ..., floor_h(t) - h`` plus the open head tile ``[floor_h(t), t)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from headwater.definitions.aggregation import (
    DAY_US,
    HOUR_US,
    MINUTE_US,
    default_granularity_us,
    resolve_granularity_us,
)

MINUTE = MINUTE_US
HOUR = HOUR_US
DAY = DAY_US

T = TypeVar("T", int, npt.NDArray[np.int64])

default_granularity = default_granularity_us
"""The default tile size of a window (see :mod:`headwater.definitions.aggregation`)."""
resolve_granularity = resolve_granularity_us
"""The validated granularity of a window (see :mod:`headwater.definitions.aggregation`)."""


def tile_start(ts: T, granularity: int) -> T:
    """``floor_h(ts)``: the start of the tile holding ``ts`` (works on int64 arrays too)."""
    return (ts // granularity) * granularity


@dataclass(frozen=True)
class WindowRead:
    """What a read at time ``t`` merges: full tiles ``[a, a + h)`` for ``a`` in
    ``range(tail, head, h)`` and the events of the open head tile with ``head <= ts < t``."""

    tail: int
    head: int
    t: int
    granularity: int

    @property
    def tile_starts(self) -> range:
        """Starts of the full tiles, oldest first."""
        return range(self.tail, self.head, self.granularity)

    def in_head(self, ts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which event times belong to the open head tile."""
        return (ts >= self.head) & (ts < self.t)

    def contains(self, ts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which event times the window at ``t`` covers: ``tail <= ts < t``."""
        return (ts >= self.tail) & (ts < self.t)


def window_read(t: int, window: int, granularity: int) -> WindowRead:
    """The tiles a read at ``t`` merges for window ``window`` and tile size ``granularity``."""
    return WindowRead(
        tail=tile_start(t - window, granularity),
        head=tile_start(t, granularity),
        t=t,
        granularity=granularity,
    )
