"""Windowed aggregations: ``Aggregation(column, function, window, granularity, name)``.

An aggregation turns a view's events into a feature whose value at time ``t`` is the function
over the events ``e`` with ``floor_h(t - W) <= e.ts < t`` (ARCHITECTURE.md, "Windowed
aggregation"): ``W`` is the window and ``h`` the granularity, the tile size, which must divide
the window. The head excludes ``t``, so an event never sees itself.

Pure definitions: the algebra that computes the functions lives in :mod:`headwater.aggregation`
and the window arithmetic on integer microseconds in :mod:`headwater.aggregation.windows`,
which uses the granularity rules below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from headwater.definitions.base import check_identifier, spec_type
from headwater.errors import DefinitionError
from headwater.types import Bool, DType, Float32, Float64, Int32, Int64, String, Timestamp

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US

FUNCTION_NAMES = ("count", "sum", "mean", "min", "max", "stddev", "variance", "last",
                  "count_distinct")
"""The aggregation functions, by the name a definition uses (the algebra's registry)."""

_NUMERIC = (Int32, Int64, Float32, Float64, Bool)
_SCALARS = (*_NUMERIC, String, Timestamp)


def default_granularity_us(window_us: int) -> int:
    """The default tile size of a window: 1 min up to 1 h, 5 min up to 1 day, 1 h up to 30
    days, 1 day beyond."""
    if window_us <= HOUR_US:
        return MINUTE_US
    if window_us <= DAY_US:
        return 5 * MINUTE_US
    if window_us <= 30 * DAY_US:
        return HOUR_US
    return DAY_US


def resolve_granularity_us(window_us: int, granularity_us: int | None,
                           obj: str = "Aggregation") -> int:
    """The granularity of a window in microseconds, validated; None means the default (the
    greatest common divisor of the window and :func:`default_granularity_us`, which is that
    default whenever it divides the window: 90 s gets 30 s tiles).

    Raises :class:`~headwater.errors.DefinitionError` naming ``obj`` when the window or the
    granularity is not positive or the granularity does not divide the window."""
    if window_us <= 0:
        raise DefinitionError(obj, "window", f"the window is {window_us} us",
                              "use a positive window such as timedelta(hours=1)")
    if granularity_us is None:
        # the architecture's default, or its largest divisor that divides the window too
        return math.gcd(window_us, default_granularity_us(window_us))
    h = granularity_us
    if h <= 0:
        raise DefinitionError(obj, "granularity", f"the granularity is {h} us",
                              "use a positive granularity")
    if window_us % h:
        raise DefinitionError(
            obj, "granularity",
            f"the granularity ({_label(h)}) does not divide the window ({_label(window_us)})",
            "choose a granularity that divides the window, or leave it unset for the default "
            f"({_label(math.gcd(window_us, default_granularity_us(window_us)))})",
        )
    return h


def _label(us: int) -> str:
    """``1h``, ``7d``, ``90s``, ``250ms``: a short name of a duration for default names."""
    for unit, size in (("d", DAY_US), ("h", HOUR_US), ("m", MINUTE_US), ("s", 1_000_000),
                       ("ms", 1_000)):
        if us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


def _micros(value: object, obj: str, field: str) -> int:
    if not isinstance(value, timedelta):
        raise DefinitionError(obj, field, f"{value!r} is not a timedelta",
                              f"pass {field}=timedelta(hours=1)")
    us = value // timedelta(microseconds=1)
    if us * timedelta(microseconds=1) != value:
        raise DefinitionError(obj, field, f"{value} is not a whole number of microseconds",
                              "round it to microseconds")
    return us


@spec_type
@dataclass(frozen=True)
class Aggregation:
    """A windowed aggregate of one column of a feature view's events.

    ``function`` is one of count, sum, mean, min, max, stddev, variance, last and
    count_distinct (exact up to 256 distinct values in a window online, then a HyperLogLog
    estimate with a 1.6% standard error; see :mod:`headwater.aggregation.distinct`).
    ``granularity`` is the tile size (default: 1 min for windows up to 1 h, 5 min up to 1 day,
    1 h up to 30 days, 1 day beyond); ``name`` defaults to ``{column}_{function}_{window}``,
    e.g. ``amount_mean_1h``. Nulls are ignored; an empty window gives 0 for count and sum and
    null for the others. stddev and variance are the sample statistics.

    >>> from datetime import timedelta
    >>> Aggregation("amount", "mean", timedelta(hours=1)).name
    'amount_mean_1h'
    """

    column: str
    function: str
    window: timedelta
    granularity: timedelta | None = None
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        me = f"Aggregation '{self.name or self.column}'"
        check_identifier(me, "column", self.column)
        if self.function not in FUNCTION_NAMES:
            raise DefinitionError(me, "function", f"unknown function {self.function!r}",
                                  f"use one of {', '.join(FUNCTION_NAMES)}")
        window = _micros(self.window, me, "window")
        granularity = (None if self.granularity is None
                       else _micros(self.granularity, me, "granularity"))
        resolve_granularity_us(window, granularity, me)
        if not self.name:
            object.__setattr__(self, "name", f"{self.column}_{self.function}_{_label(window)}")
        check_identifier(me, "name", self.name)

    @property
    def window_us(self) -> int:
        """The window in microseconds."""
        return self.window // timedelta(microseconds=1)

    @property
    def granularity_us(self) -> int:
        """The tile size in microseconds (the default when none was given)."""
        given = (None if self.granularity is None
                 else self.granularity // timedelta(microseconds=1))
        return resolve_granularity_us(self.window_us, given)

    def output_dtype(self, column: DType) -> DType:
        """The dtype of the feature, given the dtype of the aggregated column.

        Raises DefinitionError when the function cannot take that column."""
        me = f"Aggregation '{self.name}'"
        if self.function in ("count", "count_distinct"):
            if self.function == "count_distinct" and column not in _SCALARS:
                raise DefinitionError(me, "column", f"count_distinct cannot take {column!r}",
                                      "count distinct values of a scalar column")
            return Int64
        if self.function == "last":
            if column not in _SCALARS:
                raise DefinitionError(me, "column", f"last cannot take {column!r}",
                                      "aggregate a scalar column")
            return column
        if column not in _NUMERIC:
            raise DefinitionError(
                me, "column", f"{self.function} needs numbers but '{self.column}' is "
                f"{column!r}", "aggregate a numeric column, or use count, last or "
                "count_distinct")
        if self.function == "sum":
            return Float64 if column in (Float32, Float64) else Int64
        if self.function in ("min", "max"):
            return Int64 if column in (Int32, Bool) else (
                Float64 if column == Float32 else column)
        return Float64


__all__ = ["FUNCTION_NAMES", "Aggregation", "default_granularity_us", "resolve_granularity_us"]
