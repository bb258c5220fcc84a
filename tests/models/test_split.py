"""Train/test splits: time bounds, the fractional time cut, seeded random splits, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

import headwater as hw
from headwater.models.split import split_frame

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def frame(days: list[float]) -> pa.Table:
    """One row per entry: ``ts`` = T0 + that many days, ``row`` = its position."""
    times = [T0 + timedelta(days=d) for d in days]
    return pa.table({"row": np.arange(len(days)),
                     "ts": pa.array(times, pa.timestamp("us", "UTC"))})


def rows(table: pa.Table) -> list[int]:
    return [int(r) for r in table.column("row").to_pylist()]


def test_time_split_bounds_are_half_open() -> None:
    table = frame([0, 1, 2, 3, 4, 5, 6])
    split = hw.TimeSplit(test_start=T0 + timedelta(days=4), test_end=T0 + timedelta(days=6),
                         train_start=T0 + timedelta(days=1))
    parts = split_frame(table, "ts", split, model="m")
    assert rows(parts.train) == [1, 2, 3]  # train_start <= ts < test_start
    assert rows(parts.test) == [4, 5]  # test_start <= ts < test_end
    assert parts.test_start == T0 + timedelta(days=4)


def test_time_split_without_end_tests_everything_from_the_start() -> None:
    parts = split_frame(frame([0, 1, 2, 3]), "ts", hw.TimeSplit(test_start="2024-01-03"),
                        model="m")
    assert rows(parts.train) == [0, 1]
    assert rows(parts.test) == [2, 3]


def test_fractional_time_split_takes_the_latest_rows() -> None:
    table = frame([9, 1, 5, 3, 7, 0, 2, 8, 4, 6])  # unsorted on purpose
    parts = split_frame(table, "ts", hw.TimeSplit(test_fraction=0.3), model="m")
    test_days = sorted(d for d in [9, 1, 5, 3, 7, 0, 2, 8, 4, 6] if d >= 7)
    assert parts.test.num_rows == len(test_days) == 3
    assert min(parts.test.column("ts").to_pylist()) == T0 + timedelta(days=7)
    assert max(parts.train.column("ts").to_pylist()) == T0 + timedelta(days=6)
    assert parts.test_start == T0 + timedelta(days=7)


def test_fractional_cut_never_splits_a_timestamp() -> None:
    table = frame([0, 1, 1, 1, 1, 1, 2, 2, 2, 3])
    parts = split_frame(table, "ts", hw.TimeSplit(test_fraction=0.5), model="m")
    train_ts = set(parts.train.column("ts").to_pylist())
    test_ts = set(parts.test.column("ts").to_pylist())
    assert not train_ts & test_ts
    assert parts.train.num_rows + parts.test.num_rows == 10
    # the 5th row from the end is at day 1, so day 1 and later are test rows
    assert parts.train.num_rows == 1


def test_fractional_split_honours_train_start_and_test_end() -> None:
    table = frame(list(range(10)))
    split = hw.TimeSplit(train_start="2024-01-02", test_end="2024-01-10", test_fraction=0.25)
    parts = split_frame(table, "ts", split, model="m")
    assert rows(parts.train) == [1, 2, 3, 4, 5, 6]
    assert rows(parts.test) == [7, 8]


def test_empty_test_set_names_the_bounds_and_the_fix() -> None:
    with pytest.raises(hw.DataError, match=r"ModelSpec 'churn': the test set is empty \(3 "
                       r"train rows, 0 test rows of 3; .*test_start=2025-01-01.*label times "
                       r"run from 2024-01-01.*Fix: move the TimeSplit bounds"):
        split_frame(frame([0, 1, 2]), "ts", hw.TimeSplit(test_start="2025-01-01"),
                    model="churn")


def test_empty_train_set_is_refused() -> None:
    with pytest.raises(hw.DataError, match=r"the train set is empty \(0 train rows, 3 test"):
        split_frame(frame([0, 1, 2]), "ts", hw.TimeSplit(test_start="2023-06-01"),
                    model="m")
    with pytest.raises(hw.DataError, match=r"the train set is empty"):  # one timestamp only
        split_frame(frame([1, 1, 1, 1]), "ts", hw.TimeSplit(test_fraction=0.5), model="m")


def test_random_split_is_seeded_and_complete() -> None:
    table = frame(list(range(100)))
    first = split_frame(table, "ts", hw.RandomSplit(test_fraction=0.2, seed=3), model="m")
    again = split_frame(table, "ts", hw.RandomSplit(test_fraction=0.2, seed=3), model="m")
    other = split_frame(table, "ts", hw.RandomSplit(test_fraction=0.2, seed=4), model="m")
    assert rows(first.test) == rows(again.test)
    assert rows(first.test) != rows(other.test)
    assert first.test.num_rows == 20
    assert sorted(rows(first.train) + rows(first.test)) == list(range(100))
    assert rows(first.test) == sorted(rows(first.test))  # rows keep their order
    assert rows(first.test) != list(range(80, 100))  # not the latest rows
    assert first.test_start is None


def test_random_split_needs_two_rows() -> None:
    with pytest.raises(hw.DataError, match=r"at least 2 rows, the frame has 1"):
        split_frame(frame([0]), "ts", hw.RandomSplit(), model="m")
