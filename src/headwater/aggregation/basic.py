"""count, sum, min and max: aggregators whose state is a single number.

``count`` counts the non-null values (SQL ``count(column)``). ``sum`` keeps an exact Python int
while every value is an integer, and a float64 once any float is seen. ``min`` and ``max`` keep the
value's type (int or float). Empty windows give 0 for count and sum, ``None`` for min and max.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from headwater.aggregation.batch import (
    Order,
    Starts,
    Values,
    group_counts,
    numeric,
    numeric_mask,
    valid_mask,
    valid_values,
)
from headwater.aggregation.codec import decode_scalar, encode_scalar
from headwater.aggregation.packed import items, tagged
from headwater.errors import DataError

Number = int | float
_ZERO = encode_scalar(0)
_NONE = encode_scalar(None)


@dataclass(frozen=True)
class Count:
    """The number of non-null values."""

    name: str = "count"

    def init(self) -> int:
        return 0

    def update(self, state: int, values: Values, order: Order | None = None) -> int:
        return state + int(valid_values(values).shape[0])

    def update_grouped(self, values: Values, order: Order | None, starts: Starts) -> list[int]:
        _, mask = valid_mask(values)
        return [int(c) for c in group_counts(mask, starts).tolist()]

    def encode_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[bytes]:
        _, mask = valid_mask(values)
        return items(group_counts(mask, starts).astype("<i8").tobytes(), 8)

    def merge(self, a: int, b: int) -> int:
        return a + b

    def finalize(self, state: int) -> int:
        return state

    def encode(self, state: int) -> bytes:
        return struct.pack("<q", state)

    def decode(self, data: bytes) -> int:
        return int(struct.unpack("<q", data)[0])


def _number(data: bytes, function: str) -> Number | None:
    value, _ = decode_scalar(data)
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise DataError(f"aggregation '{function}': a stored tile holds {value!r}, not a number")


@dataclass(frozen=True)
class Sum:
    """The sum of the non-null values: exact for integers, float64 otherwise."""

    name: str = "sum"

    def init(self) -> Number:
        return 0

    def update(self, state: Number, values: Values, order: Order | None = None) -> Number:
        arr = numeric(values, self.name)
        if arr.shape[0] == 0:
            return state
        if arr.dtype.kind == "f":
            return state + float(np.sum(arr, dtype=np.float64))  # float32 too, as offline
        if float(np.max(np.abs(arr.astype(np.float64)))) * arr.shape[0] < 2.0**62:
            return state + int(np.sum(arr, dtype=np.int64))
        # int64 could overflow: add exactly as Python ints (only for huge magnitudes).
        exact: int = sum(int(v) for v in arr.tolist())
        return state + exact

    def _grouped(self, values: Values, starts: Starts) -> tuple[Any, npt.NDArray[np.int64]]:
        """Each group's sum (a numpy array, or exact Python ints for huge magnitudes) and
        its number of values."""
        arr, mask = numeric_mask(values, self.name)
        counts = group_counts(mask, starts)
        if arr.shape[0] == 0:
            return np.zeros(0, dtype=np.int64), counts
        if arr.dtype.kind == "f":
            return np.add.reduceat(arr.astype(np.float64), starts), counts
        if float(np.max(np.abs(arr.astype(np.float64)))) * arr.shape[0] < 2.0**62:
            return np.add.reduceat(arr.astype(np.int64), starts), counts
        # int64 could overflow: exact Python ints (only for huge magnitudes)
        bounds = [*starts.tolist(), arr.shape[0]]
        exact = arr.tolist()
        return [sum(exact[lo:hi]) for lo, hi in itertools.pairwise(bounds)], counts

    def update_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[Number]:
        sums, counts = self._grouped(values, starts)
        totals: list[Number] = sums.tolist() if isinstance(sums, np.ndarray) else sums
        # a group without values keeps the initial int 0, as update() does
        return [total if n else 0 for total, n in zip(totals, counts.tolist(), strict=True)]

    def encode_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[bytes]:
        sums, counts = self._grouped(values, starts)
        if not isinstance(sums, np.ndarray):
            return [self.encode(total if n else 0)
                    for total, n in zip(sums, counts.tolist(), strict=True)]
        out = tagged(sums)
        if sums.dtype.kind == "f":
            for i in np.flatnonzero(counts == 0).tolist():
                out[i] = _ZERO  # the initial int 0, as update_grouped gives
        return out

    def merge(self, a: Number, b: Number) -> Number:
        return a + b

    def finalize(self, state: Number) -> Number:
        return state

    def encode(self, state: Number) -> bytes:
        return encode_scalar(state)

    def decode(self, data: bytes) -> Number:
        value = _number(data, self.name)
        return 0 if value is None else value


def _pick(a: Number | None, b: Number | None, smallest: bool) -> Number | None:
    if a is None:
        return b
    if b is None:
        return a
    if smallest:
        return b if b < a else a
    return b if b > a else a


@dataclass(frozen=True)
class Extreme:
    """The smallest (``min``) or largest (``max``) non-null value."""

    name: str
    smallest: bool

    def init(self) -> Number | None:
        return None

    def update(
        self, state: Number | None, values: Values, order: Order | None = None
    ) -> Number | None:
        arr = numeric(values, self.name)
        if arr.shape[0] == 0:
            return state
        found = np.min(arr) if self.smallest else np.max(arr)
        value: Number = float(found) if arr.dtype.kind == "f" else int(found)
        return _pick(state, value, self.smallest)

    def _grouped(self, values: Values,
                 starts: Starts) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
        """Each group's extreme (meaningless where it has no values) and its number of
        values."""
        arr, mask = numeric_mask(values, self.name)
        counts = group_counts(mask, starts)
        if arr.shape[0] == 0:
            return np.zeros(0, dtype=np.int64), counts
        if arr.dtype.kind == "f":
            fill: Number = np.inf if self.smallest else -np.inf
        else:
            info = np.iinfo(np.int64)
            fill = int(info.max) if self.smallest else int(info.min)
        ufunc = np.minimum if self.smallest else np.maximum
        return ufunc.reduceat(np.where(mask, arr, arr.dtype.type(fill)), starts), counts

    def update_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[Number | None]:
        found, counts = self._grouped(values, starts)
        return [value if n else None
                for value, n in zip(found.tolist(), counts.tolist(), strict=True)]

    def encode_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[bytes]:
        found, counts = self._grouped(values, starts)
        out = tagged(found)
        for i in np.flatnonzero(counts == 0).tolist():
            out[i] = _NONE
        return out

    def merge(self, a: Number | None, b: Number | None) -> Number | None:
        return _pick(a, b, self.smallest)

    def finalize(self, state: Number | None) -> Number | None:
        return state

    def encode(self, state: Number | None) -> bytes:
        return encode_scalar(state)

    def decode(self, data: bytes) -> Number | None:
        return _number(data, self.name)


COUNT = Count()
SUM = Sum()
MIN = Extreme("min", smallest=True)
MAX = Extreme("max", smallest=False)
