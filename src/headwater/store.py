"""FeatureStore: the front door. Each method validates its input and delegates to one package.

>>> import headwater as hw
>>> store = hw.FeatureStore(repo_path="my_repo")          # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.config import Settings, load_settings
from headwater.definitions import (
    Definition,
    Entity,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    parse_feature_ref,
)
from headwater.definitions.check import check_view
from headwater.errors import DefinitionError, NotFoundError
from headwater.offline.base import ViewRequest

if TYPE_CHECKING:
    from headwater.offline.base import OfflineEngine
    from headwater.offline.retrieval import RetrievalJob
    from headwater.registry.catalog import Registry
    from headwater.registry.plan import Plan

FeatureSelection = Sequence[str] | FeatureService


class FeatureStore:
    """A feature repo: definitions in a registry, data read by an offline engine.

    ``repo_path`` is a folder holding ``headwater.yaml``; that file may hold only
    ``project: NAME``, in which case the registry is a SQLite file in ``.headwater/`` and
    the offline engine is DuckDB.
    """

    def __init__(self, repo_path: str | os.PathLike[str] = ".",
                 *, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings(repo_path)
        self._registry: Registry | None = None
        self._offline: OfflineEngine | None = None

    @property
    def project(self) -> str:
        return self.settings.project

    @property
    def repo_path(self) -> Path:
        return self.settings.repo_path

    @property
    def registry(self) -> Registry:
        """The catalog of this repo's project (opened on first use)."""
        if self._registry is None:
            from headwater.registry.catalog import open_registry

            self._registry = open_registry(self.settings)
        return self._registry

    @property
    def offline(self) -> OfflineEngine:
        """The offline engine (opened on first use)."""
        if self._offline is None:
            from headwater.offline import open_engine

            self._offline = open_engine(self.settings)
        return self._offline

    # -- catalog -------------------------------------------------------------------------

    def plan(self, objects: Iterable[Definition], *, prune: bool = False) -> Plan:
        """What ``apply(objects)`` would create, update or delete, without writing.

        With ``prune=True`` registered objects missing from ``objects`` are deleted, as
        ``headwater apply`` does for a repo folder."""
        return self.registry.plan(self._prepare(objects), prune=prune)

    def apply(self, objects: Iterable[Definition], *, prune: bool = False) -> Plan:
        """Validate ``objects`` against their sources and register them in one transaction.

        Every created or changed object gets a new version and a line in the change log.
        Invalid definitions raise DefinitionError naming the object, the field and the fix;
        then nothing is written."""
        return self.registry.apply(self._prepare(objects), prune=prune)

    def _prepare(self, objects: Iterable[Definition]) -> list[Definition]:
        """Check definitions against data and the catalog; infer missing view schemas."""
        objects = list(objects)
        for obj in objects:
            if not isinstance(obj, Definition):
                raise DefinitionError(
                    type(obj).__name__, "objects", f"{obj!r} cannot be applied",
                    "apply Entity, FeatureView and FeatureService objects",
                )
        given = {(o.kind, o.name): o for o in objects}
        prepared: list[Definition] = []
        for obj in objects:
            if isinstance(obj, FeatureView):
                for entity in obj.entities:
                    self._check_entity_matches(obj, entity, given)
                prepared.append(check_view(obj, self.offline.source_schema(obj.source)))
            else:
                prepared.append(obj)
        return prepared

    def _check_entity_matches(self, view: FeatureView, entity: Entity,
                              given: dict[tuple[str, str], Definition]) -> None:
        current = given.get((Entity.kind, entity.name))
        if current is None:
            try:
                current = self.registry.get(Entity.kind, entity.name)
            except NotFoundError:
                return  # the registry's diff reports the missing entity
        if current != entity:
            raise DefinitionError(
                f"FeatureView '{view.name}'", "entities",
                f"entity '{entity.name}' differs from the one being applied or registered",
                "use the same Entity object everywhere, or apply the changed entity too",
            )

    def list_entities(self) -> list[Entity]:
        """Every registered entity."""
        return self.registry.all_of(Entity)

    def get_entity(self, name: str) -> Entity:
        """A registered entity; raises NotFoundError with the known names."""
        return self.registry.typed(Entity, name)

    def list_feature_views(self) -> list[FeatureView]:
        """Every registered feature view, with its schema resolved."""
        return self.registry.all_of(FeatureView)

    def get_feature_view(self, name: str) -> FeatureView:
        """A registered feature view; raises NotFoundError with the known names."""
        return self.registry.typed(FeatureView, name)

    def list_feature_services(self) -> list[FeatureService]:
        """Every registered feature service."""
        return self.registry.all_of(FeatureService)

    def get_feature_service(self, name: str) -> FeatureService:
        """A registered feature service; raises NotFoundError with the known names."""
        return self.registry.typed(FeatureService, name)

    # -- training data -------------------------------------------------------------------

    def get_historical_features(
        self,
        entity_df: Any,
        features: FeatureSelection,
        full_feature_names: bool = False,
        *,
        timestamp_field: str | None = None,
    ) -> RetrievalJob:
        """A point-in-time correct training frame.

        ``entity_df`` (pandas, polars, Arrow, or a SQL query over the offline data) holds
        join keys and an event time per row. Each row gets, per view, the latest feature row
        at or before its time (within the view's ttl); none gives nulls. Rows keep their
        order and duplicates; extra columns pass through. ``features`` takes
        ``"view:feature"``, ``"view:*"`` or a FeatureService. Columns are the entity
        frame's, then the features (``view__feature`` with ``full_feature_names=True``)."""
        requests = self.resolve_features(features, full_feature_names)
        tables = {v.name: v.source for v in self.list_feature_views()}
        return self.offline.get_historical_features(
            entity_df, requests, timestamp_field=timestamp_field, tables=tables
        )

    def resolve_features(self, features: FeatureSelection,
                         full_feature_names: bool = False) -> list[ViewRequest]:
        """Turn a feature selection into typed per-view requests, checking every name."""
        selected: dict[str, list[str]] = {}
        views: dict[str, FeatureView] = {}
        for projection in _projections(features):
            view = views.get(projection.view) or self.get_feature_view(projection.view)
            views[view.name] = view
            names = projection.features or view.feature_names
            unknown = [n for n in names if n not in view.feature_names]
            if unknown:
                raise NotFoundError(
                    f"feature view '{view.name}' has no feature(s) {unknown}; "
                    f"its features are {list(view.feature_names)}"
                )
            current = selected.setdefault(view.name, [])
            current.extend(n for n in names if n not in current)
        requests = []
        owners: dict[str, str] = {}
        for view_name, chosen in selected.items():
            view = views[view_name]
            by_name = {f.name: f for f in view.features}
            fields = tuple(by_name[n] for n in chosen)
            outputs = tuple(f"{view_name}__{f.name}" if full_feature_names else f.name
                            for f in fields)
            for out in outputs:
                if out in owners:
                    raise DefinitionError(
                        "get_historical_features", "features",
                        f"feature '{out}' comes from both '{owners[out]}' and '{view_name}'",
                        "pass full_feature_names=True to name columns view__feature",
                    )
                owners[out] = view_name
            requests.append(ViewRequest(view, fields, outputs))
        return requests

    def close(self) -> None:
        """Release the registry connection and the offline engine."""
        if self._registry is not None:
            self._registry.close()
            self._registry = None
        if self._offline is not None:
            self._offline.close()
            self._offline = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureStore(project={self.project!r}, repo_path={str(self.repo_path)!r})"


def _projections(features: FeatureSelection) -> list[FeatureViewProjection]:
    if isinstance(features, FeatureService):
        return list(features.features)
    if isinstance(features, str) or not isinstance(features, Sequence):
        raise DefinitionError(
            "get_historical_features", "features",
            f"expected a list of 'view:feature' strings or a FeatureService, got {features!r}",
            "pass features=['driver_stats:conv_rate'] or a FeatureService",
        )
    if not features:
        raise DefinitionError("get_historical_features", "features", "no feature requested",
                              "name at least one 'view:feature'")
    out = []
    for item in features:
        if not isinstance(item, str):
            raise DefinitionError("get_historical_features", "features",
                                  f"{item!r} is not a 'view:feature' string",
                                  "pass strings such as 'driver_stats:conv_rate'")
        ref = parse_feature_ref(item, obj="get_historical_features")
        out.append(FeatureViewProjection(ref.view, None if ref.feature is None
                                         else (ref.feature,)))
    return out

