"""Splitting a training frame into train and test rows.

* :class:`~headwater.definitions.model.TimeSplit` with ``test_start``: train rows have
  ``train_start <= ts < test_start``, test rows ``test_start <= ts < test_end`` (each bound
  only when given). Without ``test_start``, rows before ``train_start`` and from
  ``test_end`` on are dropped, and the test set is the latest ``test_fraction`` of the rest
  by time: it starts at the time of the row at position ``n - round(n * test_fraction)`` in
  time order, so a timestamp is never on both sides (ties make the test set a little
  larger).
* :class:`~headwater.definitions.model.RandomSplit`: a seeded random ``test_fraction`` of
  the rows (at least one), drawn over the frame's canonical order, so the same frame and
  seed give the same split. Rows keep their order on each side.

An empty train or test set is a DataError with the bounds, the counts and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from headwater.definitions.model import RandomSplit, TimeSplit
from headwater.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


@dataclass(frozen=True)
class SplitFrame:
    """Train and test rows of a frame; ``test_start`` is where the test set begins (the
    cut a fractional time split chose, or the given bound; None for a random split)."""

    train: pa.Table
    test: pa.Table
    test_start: datetime | None


def split_frame(table: pa.Table, timestamp: str, split: TimeSplit | RandomSplit, *,
                model: str) -> SplitFrame:
    """``table`` (with a ``timestamp[us, UTC]`` column ``timestamp``) split by ``split``
    (see the module docstring); ``model`` names the model in errors."""
    if isinstance(split, RandomSplit):
        return _random(table, split, model)
    return _by_time(table, timestamp, split, model)


def _micros(table: pa.Table, column: str) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    values = table.column(column).cast(pa.timestamp("us", "UTC")).cast(pa.int64())
    return np.asarray(values.to_numpy(), dtype=np.int64)


def _us(moment: datetime) -> int:
    from headwater.types import to_micros

    return int(to_micros(moment))


def _by_time(table: pa.Table, timestamp: str, split: TimeSplit, model: str) -> SplitFrame:
    import numpy as np

    train_start, test_start, test_end = split.times()
    ts = _micros(table, timestamp)
    keep = np.ones(len(ts), dtype=bool)
    if train_start is not None:
        keep &= ts >= _us(train_start)
    if test_end is not None:
        keep &= ts < _us(test_end)
    start: datetime | None = test_start
    if test_start is not None:
        cut = _us(test_start)
    else:
        kept = np.sort(ts[keep])
        n_test = min(max(1, round(len(kept) * split.test_fraction)), len(kept))
        cut = int(kept[len(kept) - n_test]) if len(kept) else 0
        start = _from_micros(cut) if len(kept) else None
    train_mask, test_mask = keep & (ts < cut), keep & (ts >= cut)
    n_train, n_test = int(train_mask.sum()), int(test_mask.sum())
    if n_train == 0 or n_test == 0:
        side = "train" if n_train == 0 else "test"
        span = (f"label times run from {_from_micros(int(ts.min()))} to "
                f"{_from_micros(int(ts.max()))}" if len(ts) else "the frame has no rows")
        bounds = (f"train_start={split.train_start}, test_start="
                  f"{split.test_start or start}, test_end={split.test_end}")
        raise DataError(
            f"ModelSpec '{model}': the {side} set is empty ({n_train} train rows, {n_test} "
            f"test rows of {len(ts)}; {bounds}; {span}). Fix: move the TimeSplit bounds "
            "inside the label times, or add labelled rows on both sides of test_start")
    return SplitFrame(_rows(table, train_mask), _rows(table, test_mask), start)


def _random(table: pa.Table, split: RandomSplit, model: str) -> SplitFrame:
    import numpy as np

    n = table.num_rows
    n_test = min(max(1, round(n * split.test_fraction)), n)
    if n < 2:
        raise DataError(
            f"ModelSpec '{model}': a RandomSplit needs at least 2 rows, the frame has {n}. "
            "Fix: add labelled rows to the label source")
    rng = np.random.default_rng(split.seed)
    test_mask = np.zeros(n, dtype=bool)
    test_mask[rng.permutation(n)[:n_test]] = True
    if n_test == n:
        raise DataError(
            f"ModelSpec '{model}': the train set is empty (test_fraction "
            f"{split.test_fraction} of {n} rows). Fix: lower test_fraction or add rows")
    return SplitFrame(_rows(table, ~test_mask), _rows(table, test_mask), None)


def _rows(table: pa.Table, mask: np.ndarray) -> pa.Table:
    import pyarrow as pa

    return table.filter(pa.array(mask))


def _from_micros(value: int) -> datetime:
    from datetime import UTC, timedelta

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)
