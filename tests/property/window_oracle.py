"""The brute-force value of an aggregation function over one window, for property tests."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any


@dataclass(frozen=True)
class Spec:
    """One aggregation of a generated view: times in seconds."""

    function: str
    column: str
    window: int
    granularity: int

    @property
    def name(self) -> str:
        return f"{self.column}_{self.function}_{self.window}_{self.granularity}"


def window_value(function: str, window: Sequence[tuple[tuple[float, ...], Any]],
                 exact_float_sum: bool) -> Any:
    """``function`` over the non-null values of a window given as ``(order key, value)``
    pairs, the order key being ``(ts, created, ingestion order)``: 0 for an empty count or
    sum, None for the others; sample variance and stddev; float sums with ``math.fsum``
    when ``exact_float_sum``."""
    values = [value for _, value in window]
    if function == "count":
        return len(values)
    if function == "count_distinct":
        return len(set(values))
    if function == "sum":
        return math.fsum(values) if exact_float_sum else sum(values)
    if not values:
        return None
    if function == "last":
        return max(window, key=lambda pair: pair[0])[1]
    if function in ("min", "max"):
        return min(values) if function == "min" else max(values)
    exact = [Fraction(v) for v in values]
    if function == "mean":
        return float(sum(exact) / len(exact))
    if len(values) < 2:
        return None
    variance = statistics.variance(exact)
    return float(variance) if function == "variance" else math.sqrt(variance)
