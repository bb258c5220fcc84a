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

from headwater.errors import DefinitionError

MINUTE = 60_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

T = TypeVar("T", int, npt.NDArray[np.int64])


def default_granularity(window: int) -> int:
    """The default tile size of a window: 1 min up to 1 h, 5 min up to 1 day, 1 h up to 30 days,
    1 day beyond."""
    if window <= HOUR:
        return MINUTE
    if window <= DAY:
        return 5 * MINUTE
    if window <= 30 * DAY:
        return HOUR
    return DAY


def resolve_granularity(window: int, granularity: int | None, obj: str = "Aggregation") -> int:
    """The granularity to use for a window, validated; ``None`` means the default.

    Raises :class:`~headwater.errors.DefinitionError` naming ``obj`` when the window or the
    granularity is not positive or the granularity does not divide the window.
    """
    if window <= 0:
        raise DefinitionError(obj, "window", f"the window is {window} us", "use a positive window")
    h = default_granularity(window) if granularity is None else granularity
    if h <= 0:
        raise DefinitionError(
            obj, "granularity", f"the granularity is {h} us", "use a positive granularity"
        )
    if window % h:
        raise DefinitionError(
            obj,
            "granularity",
            f"the granularity ({h} us) does not divide the window ({window} us)",
            "choose a granularity that divides the window, or leave it unset for the default "
            f"({default_granularity(window)} us)",
        )
    return h


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
