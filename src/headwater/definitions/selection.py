"""Feature selections: what a caller asks for, resolved into typed per-view requests.

Users name features as ``"view:feature"``, ``"view:*"`` or a FeatureService; that is
parsed once here. :func:`resolve_selection` checks every name against the registered views
(looked up through a callable, so this module does no I/O) and returns one
:class:`ViewRequest` per view plus the output column order: the order of the request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from headwater.definitions.feature_service import FeatureService
from headwater.definitions.feature_view import FeatureView, FeatureViewProjection, Field
from headwater.definitions.references import parse_feature_ref
from headwater.errors import DefinitionError, NotFoundError

FeatureSelection = Sequence[str] | FeatureService


@dataclass(frozen=True)
class ViewRequest:
    """Features asked of one view.

    ``view`` has its schema resolved (given or inferred at apply); ``features`` are the
    selected fields and ``output_names`` the column names they get in the result
    (``feature`` or ``view__feature``).
    """

    view: FeatureView
    features: tuple[Field, ...]
    output_names: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    """A resolved selection: per-view requests, and the output columns in request order."""

    requests: tuple[ViewRequest, ...]
    order: tuple[str, ...]


def resolve_selection(features: FeatureSelection, lookup: Callable[[str], FeatureView],
                      full_feature_names: bool = False, *,
                      caller: str = "get_historical_features") -> Selection:
    """Check ``features`` against the views ``lookup`` returns; errors name ``caller``.

    A feature asked twice appears once. Two views giving one output name is an error
    unless ``full_feature_names`` prefixes names with their view."""
    views: dict[str, FeatureView] = {}
    picked: list[tuple[str, str]] = []  # (view, feature) in request order, once each
    for projection in projections(features, caller):
        view = views.get(projection.view) or lookup(projection.view)
        views[view.name] = view
        names = projection.features or view.feature_names
        unknown = [n for n in names if n not in view.feature_names]
        if unknown:
            raise NotFoundError(f"feature view '{view.name}' has no feature(s) {unknown}; "
                                f"its features are {list(view.feature_names)}")
        picked.extend((view.name, n) for n in names if (view.name, n) not in picked)

    def output(view: str, feature: str) -> str:
        return f"{view}__{feature}" if full_feature_names else feature

    owners: dict[str, str] = {}
    for view_name, feature in picked:
        name = output(view_name, feature)
        if owners.setdefault(name, view_name) != view_name:
            raise DefinitionError(
                caller, "features",
                f"feature '{name}' comes from both '{owners[name]}' and '{view_name}'",
                "pass full_feature_names=True to name columns view__feature",
            )
    requests = []
    for view_name, view in views.items():
        by_name = {f.name: f for f in view.features}
        fields = tuple(by_name[f] for v, f in picked if v == view_name)
        requests.append(ViewRequest(view, fields,
                                    tuple(output(view_name, f.name) for f in fields)))
    return Selection(tuple(requests), tuple(output(v, f) for v, f in picked))


def projections(features: FeatureSelection, caller: str) -> list[FeatureViewProjection]:
    """The per-view projections a selection names, parsed from strings when needed."""
    if isinstance(features, FeatureService):
        return list(features.features)
    if isinstance(features, str) or not isinstance(features, Sequence):
        raise DefinitionError(
            caller, "features",
            f"expected a list of 'view:feature' strings or a FeatureService, got {features!r}",
            "pass features=['driver_stats:conv_rate'] or a FeatureService",
        )
    if not features:
        raise DefinitionError(caller, "features", "no feature requested",
                              "name at least one 'view:feature'")
    out = []
    for item in features:
        if not isinstance(item, str):
            raise DefinitionError(caller, "features", f"{item!r} is not a 'view:feature' string",
                                  "pass strings such as 'driver_stats:conv_rate'")
        ref = parse_feature_ref(item, obj=caller)
        out.append(FeatureViewProjection(ref.view, None if ref.feature is None
                                         else (ref.feature,)))
    return out
