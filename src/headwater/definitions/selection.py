"""Feature selections: what a caller asks for, resolved into typed per-view requests.

Users name features as ``"view:feature"``, ``"view:*"`` or a FeatureService; that is
parsed once here. :func:`resolve_selection` checks every name against the registered views
(looked up through a callable, so this module does no I/O) and returns one
:class:`ViewRequest` per feature view, one :class:`OnDemandRequest` per on-demand view, and
the output column order: the order of the request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from headwater.definitions.feature_service import FeatureService
from headwater.definitions.feature_view import FeatureView, FeatureViewProjection, Field
from headwater.definitions.on_demand import OnDemandFeatureView
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
class OnDemandRequest:
    """Features asked of one on-demand view.

    ``inputs`` pairs each column the function gets from a feature view with the column of
    the fetched result that holds it; ``request_fields`` are the columns that come with the
    request (entity frame columns offline, entity row keys online)."""

    view: OnDemandFeatureView
    features: tuple[Field, ...]
    output_names: tuple[str, ...]
    inputs: tuple[tuple[str, str], ...]
    request_fields: tuple[Field, ...]


@dataclass(frozen=True)
class Selection:
    """A resolved selection: per-view requests, and the output columns in request order.

    With on-demand features, ``requests`` also fetch the features their functions need
    (under hidden names when not asked for) and ``fetched`` lists the columns the views
    give, in that order; :meth:`base` is the selection of those columns alone."""

    requests: tuple[ViewRequest, ...]
    order: tuple[str, ...]
    on_demand: tuple[OnDemandRequest, ...] = ()
    fetched: tuple[str, ...] | None = None

    @property
    def fetched_order(self) -> tuple[str, ...]:
        """The feature view columns, in the order the views give them."""
        return self.order if self.fetched is None else self.fetched

    def base(self) -> Selection:
        """The feature views' part: what the offline engine and the online store read."""
        if not self.on_demand:
            return self
        return Selection(self.requests, self.fetched_order)


HIDDEN_PREFIX = "__hw_in__"
"""Prefix of the fetched columns an on-demand view needs but the request did not ask for."""

AnyView = FeatureView | OnDemandFeatureView


def resolve_selection(features: FeatureSelection, lookup: Callable[[str], AnyView],
                      full_feature_names: bool = False, *,
                      caller: str = "get_historical_features") -> Selection:
    """Check ``features`` against the views ``lookup`` returns (feature views and on-demand
    views); errors name ``caller``.

    A feature asked twice appears once. Two views giving one output name is an error
    unless ``full_feature_names`` prefixes names with their view. An on-demand feature
    makes the features its function reads fetched too."""
    views: dict[str, AnyView] = {}
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
    columns = {key: output(*key) for key in picked}
    on_demand = []
    for view in list(views.values()):
        if not isinstance(view, OnDemandFeatureView):
            continue
        inputs = []
        for column in view.inputs(lambda n: _feature_view(lookup, n)):
            if column.view is None:
                continue
            key = (column.view, column.name)
            if key not in columns:  # fetched for the function only
                views.setdefault(column.view, _feature_view(lookup, column.view))
                columns[key] = f"{HIDDEN_PREFIX}{column.view}__{column.name}"
            inputs.append((column.name, columns[key]))
        fields = tuple(f for f in view.features if (view.name, f.name) in columns)
        on_demand.append(OnDemandRequest(
            view, fields, tuple(columns[(view.name, f.name)] for f in fields), tuple(inputs),
            tuple(f for s in view.request_sources for f in s.schema)))
    requests = []
    for view_name, view in views.items():
        if isinstance(view, OnDemandFeatureView):
            continue
        by_name = {f.name: f for f in view.features}
        fields = tuple(by_name[f] for v, f in columns if v == view_name)
        requests.append(ViewRequest(view, fields,
                                    tuple(columns[(view_name, f.name)] for f in fields)))
    order = tuple(output(v, f) for v, f in picked)
    if not on_demand:
        return Selection(tuple(requests), order)
    fetched = tuple(n for r in requests for n in r.output_names)
    return Selection(tuple(requests), order, tuple(on_demand), fetched)


def _feature_view(lookup: Callable[[str], AnyView], name: str) -> FeatureView:
    view = lookup(name)
    if not isinstance(view, FeatureView):
        raise DefinitionError(f"on-demand view source '{name}'", "sources",
                              f"'{name}' is an on-demand view, not a feature view",
                              "use feature views and request sources as sources")
    return view


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
