"""Typed feature references, parsed once at the edge from ``"view:feature"`` strings."""

from __future__ import annotations

from dataclasses import dataclass

from headwater.definitions.base import check_identifier
from headwater.errors import DefinitionError


@dataclass(frozen=True)
class FeatureRef:
    """One feature of one view; ``feature=None`` stands for ``"view:*"`` (all features)."""

    view: str
    feature: str | None

    def __str__(self) -> str:
        return f"{self.view}:{self.feature or '*'}"


def parse_feature_ref(text: str, obj: str = "feature reference") -> FeatureRef:
    """Parse ``"view:feature"`` or ``"view:*"``.

    >>> parse_feature_ref("driver_stats:conv_rate")
    FeatureRef(view='driver_stats', feature='conv_rate')
    """
    view, sep, feature = text.partition(":")
    if not sep or not view or not feature or ":" in feature:
        raise DefinitionError(obj, "features", f"'{text}' is not a feature reference",
                              "write 'view:feature' or 'view:*'")
    check_identifier(obj, "features", view)
    if feature == "*":
        return FeatureRef(view, None)
    check_identifier(obj, "features", feature)
    return FeatureRef(view, feature)
