"""Compiled online read plans.

A plan is everything a request needs, resolved once from the registry: per view, the join
keys, the positions of the requested features in the stored record, output names, the
definition generation and the ttl (for an aggregated view, its aggregations). The request
path uses only plans; :class:`PlanCache` drops them when the registry's change log moves,
which a background thread watches, so no request queries the registry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from headwater.definitions import FeatureView, Field
from headwater.definitions.aggregation import Aggregation
from headwater.definitions.selection import Selection
from headwater.errors import DefinitionError, StoreUnavailableError
from headwater.types import String


@dataclass(frozen=True)
class CompiledView:
    """One view's part of an online read."""

    view: FeatureView
    join_keys: tuple[str, ...]
    features: tuple[Field, ...]
    positions: tuple[int, ...]
    output_names: tuple[str, ...]
    generation: int
    ttl_us: int | None
    key_types: tuple[type[int] | type[str], ...]
    aggregations: tuple[Aggregation, ...] = ()
    """An aggregated view's aggregations, all of them (its records hold tiles of each);
    ``positions`` index them. Empty for a latest-value view."""


@dataclass(frozen=True)
class OnlinePlan:
    """A compiled feature selection: its views in request order."""

    views: tuple[CompiledView, ...]
    order: tuple[str, ...]

    @property
    def join_keys(self) -> tuple[str, ...]:
        """Every join key the entity rows must carry, in first-use order."""
        return tuple(dict.fromkeys(k for v in self.views for k in v.join_keys))


def compile_plan(selection: Selection, generation: Callable[[str], int]) -> OnlinePlan:
    """Compile a resolved selection into an online plan; ``generation(view)`` gives a
    view's current definition generation."""
    views = []
    for request in selection.requests:
        view = request.view
        if not view.online:
            raise DefinitionError(f"FeatureView '{view.name}'", "online",
                                  "the view is not served online (online=False)",
                                  "read it with get_historical_features, or set online=True, "
                                  "apply and materialize it")
        position = {f.name: i for i, f in enumerate(view.features)}
        ttl_us = None if view.ttl is None else view.ttl // timedelta(microseconds=1)
        views.append(CompiledView(
            view=view,
            join_keys=view.join_keys,
            features=request.features,
            positions=tuple(position[f.name] for f in request.features),
            output_names=request.output_names,
            generation=generation(view.name),
            ttl_us=ttl_us,
            key_types=tuple(str if view.key_dtype(k) == String else int
                            for k in view.join_keys),
            aggregations=view.aggregations,
        ))
    return OnlinePlan(tuple(views), selection.order)


_log = logging.getLogger("headwater.serving")

MAX_PLANS = 1024
"""Compiled plans kept per store; requests naming ever new selections cannot grow it."""


class PlanCache:
    """Plans by selection key, dropped whenever the registry's change id moves.

    ``watch`` starts a daemon thread that polls ``change_id()`` every ``interval`` seconds;
    without it, the owner calls :meth:`check` (e.g. after its own apply)."""

    def __init__(self, change_id: Callable[[], int]) -> None:
        self._change_id = change_id
        self._seen = change_id()
        self._plans: dict[object, OnlinePlan] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def generation(self) -> int:
        """The registry change id the cached plans were compiled against (no query)."""
        return self._seen

    def get(self, key: object, build: Callable[[], OnlinePlan]) -> OnlinePlan:
        """The plan for ``key``, built on first use. A plan built while the registry moved
        is used once but not kept; at most ``MAX_PLANS`` are kept (oldest dropped)."""
        plan = self._plans.get(key)
        if plan is None:
            seen = self._seen
            plan = build()
            with self._lock:
                if self._seen == seen:
                    if len(self._plans) >= MAX_PLANS:
                        del self._plans[next(iter(self._plans))]
                    self._plans[key] = plan
        return plan

    def check(self) -> bool:
        """Drop every plan if the registry changed; returns whether it did."""
        latest = self._change_id()
        with self._lock:
            if latest == self._seen:
                return False
            self._plans = {}
            self._seen = latest
        return True

    def watch(self, interval: float) -> None:
        """Poll the registry in the background (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, args=(interval,),
                                        name="headwater-plan-refresh", daemon=True)
        self._thread.start()

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check()
            except StoreUnavailableError as exc:  # keep serving the plans we have
                _log.warning("registry unreachable, keeping compiled plans: %s", exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

