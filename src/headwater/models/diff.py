"""What changed between two versions of a model: parameters, metrics, features, lineage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headwater.models.base import ModelVersion


@dataclass(frozen=True)
class VersionDiff:
    """Version ``a`` against version ``b`` of ``model``.

    ``params``: parameter -> ``(a, b)`` for parameters whose value differs (None where one
    side lacks it); ``metrics``: every metric of either side -> ``(a, b, b - a)`` (the
    delta is None unless both are numbers); ``features_added``/``features_removed``: input
    columns of ``b`` not in ``a`` and the reverse, in their model's order;
    ``features_reordered`` when the same columns come in another order; ``lineage``:
    lineage keys whose value differs -> ``(a, b)``."""

    model: str
    a: int
    b: int
    params: dict[str, tuple[Any, Any]]
    metrics: dict[str, tuple[float | None, float | None, float | None]]
    features_added: tuple[str, ...]
    features_removed: tuple[str, ...]
    features_reordered: bool
    lineage: dict[str, tuple[Any, Any]]

    @property
    def identical_inputs(self) -> bool:
        """Whether both versions read the same columns in the same order."""
        return not (self.features_added or self.features_removed or self.features_reordered)


def diff_versions(a: ModelVersion, b: ModelVersion) -> VersionDiff:
    """The differences from ``a`` to ``b`` (two versions of one model)."""
    metrics: dict[str, tuple[float | None, float | None, float | None]] = {}
    for name in sorted(set(a.metrics) | set(b.metrics)):
        left, right = a.metrics.get(name), b.metrics.get(name)
        delta = right - left if isinstance(left, int | float) and isinstance(
            right, int | float) else None
        metrics[name] = (left, right, delta)
    added = tuple(f for f in b.features if f not in set(a.features))
    removed = tuple(f for f in a.features if f not in set(b.features))
    common_a = [f for f in a.features if f in set(b.features)]
    common_b = [f for f in b.features if f in set(a.features)]
    return VersionDiff(
        model=a.model, a=a.version, b=b.version, params=_changed(a.params, b.params),
        metrics=metrics, features_added=added, features_removed=removed,
        features_reordered=common_a != common_b, lineage=_changed(a.lineage, b.lineage))


def _changed(left: dict[str, Any], right: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {key: (left.get(key), right.get(key)) for key in sorted(set(left) | set(right))
            if left.get(key) != right.get(key) or (key in left) != (key in right)}
