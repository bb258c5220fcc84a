"""The aggregation protocol: a small algebra every windowed function implements.

An aggregator is a set of pure functions over an immutable *state*:

- ``init()`` gives the state of an empty window;
- ``update(state, values, order)`` folds a whole batch of events in, vectorized with numpy;
- ``update_grouped(values, order, starts)`` does the same from ``init()`` for many groups at
  once (the (entity, tile) groups of a batch), vectorized over all of them;
- ``encode_grouped(values, order, starts)`` gives what ``encode`` gives of each state of
  ``update_grouped``, built in bulk (what online tiles store);
- ``merge(a, b)`` combines the states of two disjoint sets of events. It is associative and
  commutative, so tiles can be merged in any order or grouping;
- ``finalize(state)`` gives the feature value (0 for an empty ``count`` or ``sum``, ``None`` for
  the others);
- ``encode(state)`` / ``decode(data)`` store a state compactly and deterministically (``struct``
  only, never pickle), for tiles kept in the online store.

Nulls (Arrow nulls, ``None`` in object arrays, NaN in float arrays) are ignored by every function,
as SQL aggregates ignore NULL. The one implementation here is what backfill, materialization and
streaming all use.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from headwater.aggregation.batch import Order, Starts, Values

S = TypeVar("S")


class Aggregator(Protocol[S]):
    """One aggregation function as init, update, merge, finalize, encode and decode."""

    @property
    def name(self) -> str:
        """The name definitions use for this function."""
        ...

    def init(self) -> S:
        """The state of an empty window."""
        ...

    def update(self, state: S, values: Values, order: Order | None = None) -> S:
        """The state after adding a batch of events; ``order`` is needed only by ``last``."""
        ...

    def update_grouped(self, values: Values, order: Order | None, starts: Starts) -> list[S]:
        """One state per group, each what ``update(init(), group values, group order)``
        gives: ``values`` (and ``order``) are sorted so each group is contiguous, group ``i``
        holding the rows ``starts[i]:starts[i + 1]``. Vectorized over all groups; only the
        state objects are built per group."""
        ...

    def encode_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[bytes]:
        """``[encode(s) for s in update_grouped(values, order, starts)]``, the same bytes,
        packed with numpy where the state's layout allows (:mod:`~headwater.aggregation.
        packed`)."""
        ...

    def merge(self, a: S, b: S) -> S:
        """The state of the union of two disjoint event sets."""
        ...

    def finalize(self, state: S) -> Any:
        """The feature value of a state."""
        ...

    def encode(self, state: S) -> bytes:
        """A compact, deterministic byte form of a state."""
        ...

    def decode(self, data: bytes) -> S:
        """The state ``encode`` was given."""
        ...


def _registry() -> dict[str, Aggregator[Any]]:
    from headwater.aggregation.basic import COUNT, MAX, MIN, SUM
    from headwater.aggregation.distinct import COUNT_DISTINCT
    from headwater.aggregation.last import LAST
    from headwater.aggregation.moments import MEAN, STDDEV, VARIANCE

    functions: list[Aggregator[Any]] = [
        COUNT,
        SUM,
        MEAN,
        MIN,
        MAX,
        STDDEV,
        VARIANCE,
        LAST,
        COUNT_DISTINCT,
    ]
    return {f.name: f for f in functions}


FUNCTIONS: dict[str, Aggregator[Any]] = _registry()
"""Every aggregation function by the name a definition uses."""
