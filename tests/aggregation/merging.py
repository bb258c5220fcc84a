"""Helpers shared by the aggregation tests: split a batch into tiles and merge them at random."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

from headwater.aggregation.base import Aggregator


def split_points(draw: st.DrawFn, n: int) -> list[tuple[int, int]]:
    """Random contiguous parts ``[lo, hi)`` covering ``range(n)`` (some may be empty)."""
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    bounds = [0, *cuts, n]
    return list(itertools.pairwise(bounds))


def merge_randomly(draw: st.DrawFn, agg: Aggregator[Any], states: list[Any]) -> Any:
    """Merge states in a random order and a random grouping (a random binary tree)."""
    pool = list(draw(st.permutations(states))) if states else [agg.init()]
    while len(pool) > 1:
        i = draw(st.integers(0, len(pool) - 2))
        a, b = pool[i], pool[i + 1]
        if draw(st.booleans()):
            a, b = b, a
        pool[i : i + 2] = [agg.merge(a, b)]
    return pool[0]
