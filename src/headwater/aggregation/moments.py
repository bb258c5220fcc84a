"""mean, variance and stddev from one numerically stable state: count, sum and M2.

A batch is summarised with numpy (its sum, then the sum of squared deviations from its mean)
and combined with Chan et al.'s parallel formula, which is Welford's update generalised to two
partial results. This avoids the cancellation of the naive ``sum(x^2) - n*mean^2``.

``variance`` and ``stddev`` are the *sample* statistics (divide by ``n - 1``), as DuckDB's
``var_samp`` / ``stddev_samp`` (and its ``variance`` / ``stddev``) compute them, so offline
backfills in DuckDB give the same numbers. Like DuckDB they are ``None`` for fewer than two values;
``mean`` is ``None`` for an empty window; it is ``sum / count``, as DuckDB's ``avg``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from headwater.aggregation.batch import (
    Order,
    Starts,
    Values,
    group_counts,
    group_of_rows,
    numeric,
    numeric_mask,
)
from headwater.aggregation.packed import records


class Moments(NamedTuple):
    """Count, sum and sum of squared deviations from the mean of the values seen.

    The sum, not the running mean, is kept: the mean is ``total / n`` as DuckDB's ``avg``
    computes it, so values of large magnitude that cancel (1, 1e12, -1e12) give the same
    mean online, merged from any split of the events, as offline."""

    n: int
    total: float
    m2: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0


EMPTY = Moments(0, 0.0, 0.0)


def combine(a: Moments, b: Moments) -> Moments:
    """Chan's parallel merge of two partial moments."""
    if a.n == 0:
        return b
    if b.n == 0:
        return a
    n = a.n + b.n
    delta = b.mean - a.mean
    m2 = a.m2 + b.m2 + delta * delta * (a.n * b.n / n)
    return Moments(n, a.total + b.total, m2)


def of_batch(values: Values, function: str) -> Moments:
    """The moments of the non-null values of one batch."""
    arr = numeric(values, function).astype(np.float64)
    n = int(arr.shape[0])
    if n == 0:
        return EMPTY
    total = float(np.sum(arr))
    dev = arr - total / n
    return Moments(n, total, float(np.dot(dev, dev)))


@dataclass(frozen=True)
class MomentsAggregator:
    """An aggregator over :class:`Moments`; ``statistic`` picks what ``finalize`` gives."""

    name: str
    statistic: str  # "mean", "variance" or "stddev"

    def init(self) -> Moments:
        return EMPTY

    def update(self, state: Moments, values: Values, order: Order | None = None) -> Moments:
        return combine(state, of_batch(values, self.name))

    def _grouped(self, values: Values, starts: Starts) -> tuple[
            npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Each group's count, sum and M2 as numpy columns (0, 0.0 and 0.0 when empty)."""
        arr, mask = numeric_mask(values, self.name)
        n = arr.shape[0]
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64)
        x = arr.astype(np.float64)
        counts = group_counts(mask, starts)
        sums = np.add.reduceat(x, starts)  # nulls are 0
        means = sums / np.maximum(counts, 1)
        dev = np.where(mask, x - means[group_of_rows(starts, n)], 0.0)
        m2 = np.add.reduceat(dev * dev, starts)
        empty = counts == 0
        return counts, np.where(empty, 0.0, sums), np.where(empty, 0.0, m2)

    def update_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[Moments]:
        counts, sums, m2 = self._grouped(values, starts)
        return [Moments(c, total, sq) if c else EMPTY
                for c, total, sq in zip(counts.tolist(), sums.tolist(), m2.tolist(),
                                        strict=True)]

    def encode_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[bytes]:
        counts, sums, m2 = self._grouped(values, starts)
        return records([("<q", counts), ("<d", sums), ("<d", m2)])

    def merge(self, a: Moments, b: Moments) -> Moments:
        return combine(a, b)

    def finalize(self, state: Moments) -> float | None:
        if self.statistic == "mean":
            return state.mean if state.n else None
        if state.n < 2:
            return None
        var = max(state.m2, 0.0) / (state.n - 1)
        return math.sqrt(var) if self.statistic == "stddev" else var

    def encode(self, state: Moments) -> bytes:
        return struct.pack("<qdd", state.n, state.total, state.m2)

    def decode(self, data: bytes) -> Moments:
        n, total, m2 = struct.unpack("<qdd", data)
        return Moments(int(n), float(total), float(m2))


MEAN = MomentsAggregator("mean", "mean")
VARIANCE = MomentsAggregator("variance", "variance")
STDDEV = MomentsAggregator("stddev", "stddev")
