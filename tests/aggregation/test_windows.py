"""Window arithmetic against a brute-force filter of event times.

For random (W, h, t), the events read as full tiles ``[a, a + h)`` plus the open head must be
exactly the events with ``floor_h(t - W) <= ts < t``. Events are planted at ``t`` (excluded),
at ``floor_h(t - W)`` (included), one microsecond either side of those, and on tile boundaries.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.aggregation.base import FUNCTIONS
from headwater.aggregation.windows import (
    DAY,
    HOUR,
    MINUTE,
    default_granularity,
    resolve_granularity,
    tile_start,
    window_read,
)
from headwater.errors import DefinitionError


@st.composite
def reads(draw: st.DrawFn) -> tuple[int, int, int, np.ndarray[tuple[int], np.dtype[np.int64]]]:
    h = draw(st.sampled_from([1, 7, 60, 1_000, MINUTE]))
    window = h * draw(st.integers(1, 12))
    t = draw(st.integers(-50 * window, 50 * window))
    tail = (t - window) // h * h
    planted = [t, t - 1, t + 1, tail, tail - 1, tail + 1, t // h * h, t // h * h - 1]
    boundaries = [tail + k * h for k in range(window // h + 2)]
    noise = draw(st.lists(st.integers(tail - 2 * h, t + 2 * h), max_size=30))
    ts = np.array(planted + boundaries + noise, dtype=np.int64)
    return window, h, t, ts


@settings(max_examples=500, deadline=None)
@given(case=reads())
def test_tiles_plus_head_equal_brute_force(
    case: tuple[int, int, int, np.ndarray[tuple[int], np.dtype[np.int64]]],
) -> None:
    window, h, t, ts = case
    read = window_read(t, window, h)
    starts = tile_start(ts, h)
    full = np.isin(starts, np.array(list(read.tile_starts), dtype=np.int64))
    chosen = np.sort(ts[full | read.in_head(ts)])
    tail = (t - window) // h * h
    brute = np.sort(np.array([e for e in ts.tolist() if tail <= e < t], dtype=np.int64))
    assert np.array_equal(chosen, brute)
    assert np.array_equal(np.sort(ts[read.contains(ts)]), brute)
    assert not np.any(chosen == t)
    # Full tiles hold only their own events: [a, a + h).
    for a in read.tile_starts:
        inside = ts[starts == a]
        assert np.all((inside >= a) & (inside < a + h))
    # And the merged tiles aggregate to the brute-force count and sum.
    count, total = FUNCTIONS["count"], FUNCTIONS["sum"]
    merged = total.init()
    for a in read.tile_starts:
        merged = total.merge(merged, total.update(total.init(), ts[starts == a]))
    merged = total.merge(merged, total.update(total.init(), ts[read.in_head(ts)]))
    assert total.finalize(merged) == int(brute.sum())
    assert count.finalize(count.update(0, chosen)) == brute.shape[0]


@pytest.mark.parametrize(
    ("window", "granularity"),
    [
        (MINUTE, MINUTE), (HOUR, MINUTE), (HOUR + MINUTE, 5 * MINUTE),
        (DAY, 5 * MINUTE), (DAY + HOUR, HOUR), (30 * DAY, HOUR), (31 * DAY, DAY),
    ],
)
def test_default_granularity(window: int, granularity: int) -> None:
    assert default_granularity(window) == granularity


def test_granularity_must_divide_the_window() -> None:
    assert resolve_granularity(7 * DAY, HOUR) == HOUR
    assert resolve_granularity(2 * HOUR, None) == 5 * MINUTE
    with pytest.raises(DefinitionError, match="does not divide the window") as info:
        resolve_granularity(HOUR, 7 * MINUTE, "Aggregation 'amount_mean_1h'")
    assert info.value.field == "granularity"
    assert "amount_mean_1h" in str(info.value)
    with pytest.raises(DefinitionError, match="positive"):
        resolve_granularity(0, None)
    with pytest.raises(DefinitionError, match="positive"):
        resolve_granularity(HOUR, -MINUTE)


def test_tile_start_floors_negative_times() -> None:
    assert tile_start(-1, 10) == -10
    assert tile_start(10, 10) == 10
    assert np.array_equal(tile_start(np.array([-11, -10, 9, 10]), 10), [-20, -10, 0, 10])
