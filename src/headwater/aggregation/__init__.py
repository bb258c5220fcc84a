"""Windowed aggregation: an algebra of mergeable functions and the window arithmetic of tiles.

See :mod:`headwater.aggregation.base` for the protocol and the registry ``FUNCTIONS``, and
:mod:`headwater.aggregation.windows` for tile starts and what a read at time ``t`` merges.
"""

from __future__ import annotations

from headwater.aggregation.base import FUNCTIONS, Aggregator
from headwater.aggregation.batch import Order
from headwater.aggregation.windows import (
    WindowRead,
    default_granularity,
    resolve_granularity,
    tile_start,
    window_read,
)

__all__ = [
    "FUNCTIONS",
    "Aggregator",
    "Order",
    "WindowRead",
    "default_granularity",
    "resolve_granularity",
    "tile_start",
    "window_read",
]
