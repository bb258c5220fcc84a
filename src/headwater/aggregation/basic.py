"""count, sum, min and max: aggregators whose state is a single number.

``count`` counts the non-null values (SQL ``count(column)``). ``sum`` keeps an exact Python int
while every value is an integer, and a float64 once any float is seen. ``min`` and ``max`` keep the
value's type (int or float). Empty windows give 0 for count and sum, ``None`` for min and max.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

import numpy as np

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
from headwater.errors import DataError

Number = int | float


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

    def update_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[Number]:
        arr, mask = numeric_mask(values, self.name)
        counts = group_counts(mask, starts).tolist()
        if arr.shape[0] == 0:
            return []
        if arr.dtype.kind == "f":
            sums: list[Number] = np.add.reduceat(arr.astype(np.float64), starts).tolist()
        elif float(np.max(np.abs(arr.astype(np.float64)))) * arr.shape[0] < 2.0**62:
            sums = np.add.reduceat(arr.astype(np.int64), starts).tolist()
        else:  # int64 could overflow: exact Python ints (only for huge magnitudes)
            bounds = [*starts.tolist(), arr.shape[0]]
            exact = arr.tolist()
            sums = [sum(exact[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
        # a group without values keeps the initial int 0, as update() does
        return [total if n else 0 for total, n in zip(sums, counts, strict=True)]

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

    def update_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[Number | None]:
        arr, mask = numeric_mask(values, self.name)
        if arr.shape[0] == 0:
            return []
        counts = group_counts(mask, starts).tolist()
        if arr.dtype.kind == "f":
            fill: Number = np.inf if self.smallest else -np.inf
        else:
            info = np.iinfo(np.int64)
            fill = int(info.max) if self.smallest else int(info.min)
        ufunc = np.minimum if self.smallest else np.maximum
        found = ufunc.reduceat(np.where(mask, arr, arr.dtype.type(fill)), starts).tolist()
        return [value if n else None for value, n in zip(found, counts, strict=True)]

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
