"""Feature services: the named feature set a model consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from headwater.definitions.base import Definition, check_identifier, check_tags, spec_type
from headwater.definitions.feature_view import FeatureView, FeatureViewProjection
from headwater.definitions.on_demand import OnDemandFeatureView
from headwater.definitions.references import parse_feature_ref
from headwater.errors import DefinitionError


@spec_type
@dataclass(frozen=True)
class FeatureService(Definition):
    """A named set of features from one or more views.

    ``features`` takes feature views and on-demand views (all their features), projections
    such as
    ``view[["a", "b"]]``, and ``"view:feature"`` / ``"view:*"`` strings.
    """

    kind: ClassVar[str] = "feature_service"

    name: str
    features: tuple[FeatureViewProjection, ...]
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_identifier("FeatureService", "name", self.name)
        me = f"FeatureService '{self.name}'"
        items = self.features if isinstance(self.features, list | tuple) else [self.features]
        if not items:
            raise DefinitionError(me, "features", "no features given",
                                  "pass features=[my_view] or ['my_view:my_feature']")
        merged: dict[str, list[str] | None] = {}
        for item in items:
            view, names = _projection_of(me, item)
            if view in merged and (merged[view] is None or names is None):
                raise DefinitionError(me, "features", f"view '{view}' is selected twice",
                                      "select each view once, either whole or by feature")
            if names is None:
                merged[view] = None
            else:
                current = merged.setdefault(view, [])
                if current is not None:
                    current.extend(n for n in names if n not in current)
        projections = tuple(
            FeatureViewProjection(view, None if names is None else tuple(names))
            for view, names in merged.items()
        )
        object.__setattr__(self, "features", projections)
        object.__setattr__(self, "tags", check_tags(me, self.tags))


def _projection_of(me: str, item: object) -> tuple[str, tuple[str, ...] | None]:
    if isinstance(item, FeatureView | OnDemandFeatureView):
        return item.name, None
    if isinstance(item, FeatureViewProjection):
        return item.view, item.features
    if isinstance(item, str):
        ref = parse_feature_ref(item, obj=me)
        return ref.view, None if ref.feature is None else (ref.feature,)
    raise DefinitionError(me, "features", f"{item!r} is not a feature view or reference",
                          "pass feature views, view[['feature']] or 'view:feature' strings")
