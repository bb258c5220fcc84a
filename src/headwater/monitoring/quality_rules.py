"""The bounds data quality checks hold a feature view to: :class:`QualityRules`.

:func:`~headwater.monitoring.quality.check_quality` and
:func:`~headwater.monitoring.quality.check_feature_view` read their thresholds from one
frozen :class:`QualityRules`. Every bound has a documented default, and where a *reference*
is given (a :class:`~headwater.monitoring.profile.Profile` of the training data or of a
window known to be good) the defaults follow it:

* **null rate** of a column (nulls and NaN over the window's rows) fails above
  ``max_null_rate`` when that is given (one number for every column, or per column);
  otherwise above the reference's null rate of that column plus ``null_rate_margin``
  (absolute, default 0.05), or, without a reference, above ``null_rate_margin`` alone (a
  column is expected to hold no nulls, with that tolerance). A column whose values are all
  null fails whatever the bound: nothing in it can be measured.
* **range** of a numeric column: ``ranges[column] = (low, high)`` (either None for no
  bound); otherwise the reference's ``[min, max]`` widened on each side by ``range_margin``
  (default 0.25) times ``max - min`` (times ``max(|min|, 1)`` for a constant reference).
  The check fails when the fraction of non-null values outside the range exceeds
  ``max_out_of_range`` (default 0.0: any value outside fails, as a hard bound should).
  Without either, the column's range is not checked.
* **volume**: the window's row count must be at least ``min_rows`` (default 1, and never
  less: an empty window always fails) and at most ``max_rows`` (default None, no bound).
  With ``volume_tolerance`` and a reference (then a profile of a comparable window, e.g. the
  previous one), the count must also lie within ``reference.rows * (1 -+ tolerance)``.
* **freshness**: with ``freshness`` (an SLO), the latest event before the window's end must
  be no older than it at the end; default None, no SLO (the age is still reported).
* **schema**: ``schema`` (column -> dtype) replaces the expected columns (default: the
  feature view's declared schema, or the ``schema`` given to ``check_quality``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NoReturn, TypeGuard

from headwater.errors import DataError, DefinitionError
from headwater.monitoring.profile import NumericProfile
from headwater.types import DType

DEFAULT_NULL_RATE_MARGIN = 0.05
DEFAULT_RANGE_MARGIN = 0.25

Bounds = tuple[float | None, float | None]


@dataclass(frozen=True)
class QualityRules:
    """Thresholds of the data quality checks (see the module docstring for each default)."""

    schema: Mapping[str, DType] | None = field(default=None, hash=False)
    max_null_rate: float | Mapping[str, float] | None = field(default=None, hash=False)
    null_rate_margin: float = DEFAULT_NULL_RATE_MARGIN
    ranges: Mapping[str, Bounds] = field(default_factory=dict, hash=False)
    range_margin: float = DEFAULT_RANGE_MARGIN
    max_out_of_range: float = 0.0
    min_rows: int = 1
    max_rows: int | None = None
    volume_tolerance: float | None = None
    freshness: timedelta | None = None

    def __post_init__(self) -> None:
        if self.schema is not None:
            for name, dtype in self.schema.items():
                if not isinstance(dtype, DType):
                    _bad("schema", f"column '{name}' maps to {dtype!r}, not a dtype",
                         "map each column to a Headwater dtype, e.g. hw.Float64")
        rates = (self.max_null_rate if isinstance(self.max_null_rate, Mapping)
                 else {"*": self.max_null_rate} if self.max_null_rate is not None else {})
        for name, rate in rates.items():
            _fraction("max_null_rate", rate, f" (column '{name}')" if name != "*" else "")
        _fraction("null_rate_margin", self.null_rate_margin)
        _fraction("max_out_of_range", self.max_out_of_range)
        if not _number(self.range_margin) or self.range_margin < 0:
            _bad("range_margin", f"{self.range_margin!r} is not a number >= 0",
                 "pass e.g. 0.25 (a quarter of the reference's span on each side)")
        for name, bounds in self.ranges.items():
            _check_bounds(name, bounds)
        if not isinstance(self.min_rows, int) or self.min_rows < 1:
            _bad("min_rows", f"{self.min_rows!r} is not an integer >= 1",
                 "pass at least 1: an empty window always fails the volume check")
        if self.max_rows is not None and (not isinstance(self.max_rows, int)
                                          or self.max_rows < self.min_rows):
            _bad("max_rows", f"{self.max_rows!r} is not an integer >= min_rows "
                 f"({self.min_rows})", "raise it, or pass None for no upper bound")
        if self.volume_tolerance is not None:
            _fraction("volume_tolerance", self.volume_tolerance)
        if self.freshness is not None and (not isinstance(self.freshness, timedelta)
                                           or self.freshness <= timedelta(0)):
            _bad("freshness", f"{self.freshness!r} is not a positive timedelta",
                 "pass e.g. timedelta(hours=2), or None for no SLO")

    def check_columns(self, expected: Mapping[str, DType], owner: str) -> None:
        """DataError when a per-column rule names a column not in ``expected`` (a typo
        would silently check nothing) or sets a range on a non-numeric column."""
        named = [*self.ranges, *(self.max_null_rate if isinstance(self.max_null_rate,
                                                                   Mapping) else ())]
        for name in named:
            if name not in expected:
                raise DataError(f"{owner}: QualityRules names column '{name}', which is not "
                                f"among the checked columns {list(expected)}. Fix: correct "
                                "the name, or add it to the schema")
        for name in self.ranges:
            if not expected[name].is_numeric:
                raise DataError(f"{owner}: QualityRules.ranges names column '{name}' of "
                                f"dtype {expected[name]!r}, which is not numeric. Fix: set "
                                "ranges on numeric columns only")

    def null_threshold(self, column: str, reference_rate: float | None) -> float:
        """The null rate above which ``column`` fails (module docstring)."""
        if isinstance(self.max_null_rate, Mapping):
            if column in self.max_null_rate:
                return float(self.max_null_rate[column])
        elif self.max_null_rate is not None:
            return float(self.max_null_rate)
        return (reference_rate or 0.0) + self.null_rate_margin

    def range_bounds(self, column: str, reference: NumericProfile | None) -> Bounds | None:
        """``(low, high)`` for ``column``, or None when it has no range (module docstring)."""
        if column in self.ranges:
            low, high = self.ranges[column]
            return (None if low is None else float(low), None if high is None else float(high))
        if reference is None or reference.min is None or reference.max is None:
            return None
        span = reference.max - reference.min
        pad = self.range_margin * (span if span > 0 else max(abs(reference.min), 1.0))
        return reference.min - pad, reference.max + pad

    def volume_bounds(self, reference_rows: int | None) -> tuple[float, float | None]:
        """``(low, high)`` bounds of the row count (module docstring)."""
        low: float = self.min_rows
        high: float | None = self.max_rows
        if self.volume_tolerance is not None and reference_rows is not None:
            low = max(low, reference_rows * (1.0 - self.volume_tolerance))
            relative = reference_rows * (1.0 + self.volume_tolerance)
            high = relative if high is None else min(high, relative)
        return low, high


def _number(value: object) -> TypeGuard[float]:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _fraction(name: str, value: object, where: str = "") -> None:
    if not _number(value) or not 0.0 <= value <= 1.0:
        _bad(name, f"{value!r}{where} is not a fraction between 0 and 1",
             "pass e.g. 0.05 for 5%")


def _check_bounds(name: str, bounds: object) -> None:
    if not isinstance(bounds, tuple) or len(bounds) != 2:
        _bad("ranges", f"column '{name}' maps to {bounds!r}, not a (low, high) pair",
             "pass ranges={'col': (0.0, 1.0)}, None for an open side")
    low, high = bounds
    for side in (low, high):
        if side is not None and not _number(side):
            _bad("ranges", f"column '{name}' has bound {side!r}, not a finite number",
                 "use finite numbers, or None for an open side")
    if low is not None and high is not None and low > high:
        _bad("ranges", f"column '{name}' has low {low} above high {high}", "swap them")


def _bad(name: str, problem: str, fix: str) -> NoReturn:
    raise DefinitionError("QualityRules", name, problem, fix)


__all__ = ["DEFAULT_NULL_RATE_MARGIN", "DEFAULT_RANGE_MARGIN", "Bounds", "QualityRules"]
