"""FeatureStore: the front door. Each method validates its input and delegates to one package.

>>> import headwater as hw
>>> store = hw.FeatureStore(repo_path="my_repo")          # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.config import Settings, load_settings
from headwater.definitions import (
    Definition,
    Entity,
    FeatureService,
    FeatureView,
    Job,
    ModelSpec,
    Monitor,
    OnDemandFeatureView,
)
from headwater.definitions.check import check_view
from headwater.definitions.selection import FeatureSelection, Selection, resolve_selection
from headwater.errors import DataError, DefinitionError, NotFoundError
from headwater.types import to_micros, to_utc

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.inference.batch import PredictionJob
    from headwater.materialize.job import MaterializeResult, Progress
    from headwater.models.base import AliasEvent, ModelVersion, Predictor, TrainingRun
    from headwater.models.registry import ModelRegistry
    from headwater.monitoring.profile import Profile
    from headwater.offline.base import OfflineEngine
    from headwater.offline.retrieval import RetrievalJob
    from headwater.online.base import OnlineStore
    from headwater.registry.catalog import Registry
    from headwater.registry.monitor_tables import MonitorRun
    from headwater.registry.plan import Plan
    from headwater.serving.plans import OnlinePlan, PlanCache
    from headwater.serving.response import OnlineResponse
    from headwater.streaming.push import PushResult
    from headwater.transforms.functions import Function, FunctionResolver
    from headwater.transforms.online import OnDemandPlan


PLAN_REFRESH_SECONDS = 2.0
"""How often a store serving online reads checks the registry for changes."""

_FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)

MAX_ON_DEMAND_PLANS = 1024
"""Selections kept per store for online reads with on-demand features."""


def _selection_key(features: FeatureSelection, full_feature_names: bool) -> object:
    """The cache key of a selection: a feature service by its spec, a list by its names."""
    if isinstance(features, FeatureService):
        return ("service", features.spec_hash(), full_feature_names)
    return ("refs", tuple(features) if isinstance(features, Sequence) else features,
            full_feature_names)


def _column_names(entity_df: Any) -> list[str] | None:
    """The columns of an entity frame (pandas, polars, Arrow), or None for a SQL query."""
    if isinstance(entity_df, str):
        return None
    names = getattr(entity_df, "column_names", None)  # Arrow
    if names is None:
        names = getattr(entity_df, "columns", None)  # pandas, polars
    return None if names is None else [str(n) for n in names]



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
        self._online: OnlineStore | None = None
        self._plans: PlanCache | None = None
        self._functions: FunctionResolver | None = None
        self._on_demand_plans: dict[object, tuple[int, OnDemandPlan | None]] = {}
        self._models: ModelRegistry | None = None

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

    @property
    def online(self) -> OnlineStore:
        """The online store (opened on first use)."""
        if self._online is None:
            from headwater.online import open_online_store

            self._online = open_online_store(self.settings)
        return self._online

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
        from headwater.transforms.functions import remember

        prepared = self._prepare(objects)
        plan = self.registry.apply(prepared, prune=prune)
        remember(self.project, prepared)
        if self._plans is not None:
            self._plans.check()
        return plan

    def _prepare(self, objects: Iterable[Definition]) -> list[Definition]:
        """Check definitions against data and the catalog; infer missing view schemas."""
        objects = list(objects)
        for obj in objects:
            if not isinstance(obj, Definition):
                raise DefinitionError(
                    type(obj).__name__, "objects", f"{obj!r} cannot be applied",
                    "apply Entity, FeatureView, OnDemandFeatureView and FeatureService objects",
                )
        given = {(o.kind, o.name): o for o in objects}
        prepared: list[Definition] = []
        for obj in objects:
            if isinstance(obj, FeatureView):
                for entity in obj.entities:
                    self._check_entity_matches(obj, entity, given)
                prepared.append(check_view(obj, self.offline.source_schema(obj.batch_source)))
            elif isinstance(obj, ModelSpec):
                from headwater.models.check import check_model

                prepared.append(check_model(self, obj, given))
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

    def list_on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        """Every registered on-demand feature view (its function is not loaded)."""
        return self.registry.all_of(OnDemandFeatureView)

    def get_on_demand_feature_view(self, name: str) -> OnDemandFeatureView:
        """A registered on-demand feature view; raises NotFoundError with the known names."""
        return self.registry.typed(OnDemandFeatureView, name)

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
        selection = self.resolve_features(features, full_feature_names)
        functions = self._on_demand_functions(selection)
        tables = {v.name: v.batch_source for v in self.list_feature_views()}
        job = self.offline.get_historical_features(
            entity_df, list(selection.requests), timestamp_field=timestamp_field,
            tables=tables)
        if not selection.on_demand:
            return job.with_feature_order(selection.order)
        from headwater.transforms.offline import check_request_fields, with_on_demand

        columns = _column_names(entity_df)
        if columns is not None:  # a frame: check now (a query's columns are checked on read)
            check_request_fields(selection, columns)
        return with_on_demand(job, selection, functions)

    def resolve_features(self, features: FeatureSelection, full_feature_names: bool = False,
                         *, caller: str = "get_historical_features") -> Selection:
        """Turn a feature selection into typed per-view requests and the output column
        order (the order of the request), checking every name; errors name ``caller``.
        On-demand features bring the features their functions read with them."""
        return resolve_selection(features, self._any_view, full_feature_names,
                                 caller=caller)

    def _any_view(self, name: str) -> FeatureView | OnDemandFeatureView:
        try:
            return self.get_feature_view(name)
        except NotFoundError:
            try:
                return self.get_on_demand_feature_view(name)
            except NotFoundError:
                views = [v.name for v in self.list_feature_views()]
                on_demand = [v.name for v in self.list_on_demand_feature_views()]
                raise NotFoundError(
                    f"no feature_view named '{name}' in project '{self.project}'; registered: "
                    f"{views or 'none'}; on-demand: {on_demand or 'none'}. Fix: check the "
                    "name, or apply it first") from None

    def _on_demand_functions(self, selection: Selection) -> dict[str, Function]:
        """The callable of each on-demand view of ``selection`` (see
        :mod:`headwater.transforms.functions`)."""
        if not selection.on_demand:
            return {}
        if self._functions is None:
            from headwater.transforms.functions import FunctionResolver

            self._functions = FunctionResolver(self.project, self.repo_path)
        return {r.view.name: self._functions.resolve(r.view) for r in selection.on_demand}

    # -- online -------------------------------------------------------------------------

    def get_online_features(
        self,
        features: FeatureSelection,
        entity_rows: Sequence[Mapping[str, Any]],
        full_feature_names: bool = False,
        *,
        now: datetime | None = None,
    ) -> OnlineResponse:
        """Feature values served from the online store, one round trip for all views.

        ``entity_rows`` are dicts of join keys (``[{"driver_id": 1001}]``); a row may carry
        the keys of several views. Per view and row the response metadata gives the event
        time and a status: PRESENT, MISSING (never seen) or EXPIRED (older than the view's
        ttl at ``now``; values null). ``now`` defaults to the current time. Plans are
        compiled once per selection and refreshed in the background when the registry
        changes, so a request does not query the registry."""
        from headwater.serving.online import read_online

        if isinstance(entity_rows, Mapping | str | bytes) or not isinstance(entity_rows, Sequence):
            raise DataError(f"get_online_features: entity_rows must be a list of dicts such as "
                            f"[{{'driver_id': 1001}}], got {type(entity_rows).__name__}")
        bad = next((i for i, row in enumerate(entity_rows) if not isinstance(row, Mapping)),
                   None)
        if bad is not None:
            raise DataError(f"get_online_features: entity_rows[{bad}] is "
                            f"{type(entity_rows[bad]).__name__}, not a dict of join keys. "
                            "Fix: pass one dict per entity, e.g. {'driver_id': 1001}")
        if now is not None and not isinstance(now, datetime):
            raise DataError(f"get_online_features: now must be a datetime, got {now!r}. Fix: "
                            "pass datetime(2024, 1, 1, tzinfo=timezone.utc) or omit it")
        key = _selection_key(features, full_feature_names)
        on_demand = self._on_demand_plan(key, features, full_feature_names)
        plan = self._online_plan(key, features, full_feature_names,
                                 None if on_demand is None else on_demand.selection)
        moment = to_utc(now) if now is not None else datetime.now(UTC)
        response = read_online(self.online, plan, entity_rows, to_micros(moment))
        if on_demand is None:
            return response
        from headwater.transforms.online import apply_on_demand

        return apply_on_demand(response, entity_rows, on_demand)

    def record_generation(self, view_name: str) -> int:
        """The definition generation online records of ``view_name`` are written with: it
        grows each time the view's features, keys or source change. Computed from the view's
        history once per registry change."""
        from headwater.materialize.encode import view_generation

        registry = self.registry
        return registry.derived(("generation", view_name), lambda: view_generation(
            [r.spec for r in registry.history(FeatureView.kind, view_name)]))

    def plan_generation(self) -> int:
        """The registry change id the compiled online plans follow (no registry query);
        it moves when the background refresher sees a registry change."""
        return self._plan_cache().generation

    def _plan_cache(self) -> PlanCache:
        from headwater.serving.plans import PlanCache

        if self._plans is None:
            backend, project = self.registry.backend, self.project
            self._plans = PlanCache(lambda: backend.last_change_id(project))
            self._plans.watch(PLAN_REFRESH_SECONDS)
        return self._plans

    def _online_plan(self, key: object, features: FeatureSelection, full_feature_names: bool,
                     selection: Selection | None = None) -> OnlinePlan:
        """The compiled plan of ``features`` (of ``selection``'s feature views when given),
        cached under ``key``."""
        from headwater.serving.plans import compile_plan

        return self._plan_cache().get(key, lambda: compile_plan(
            selection.base() if selection is not None else self.resolve_features(
                features, full_feature_names, caller="get_online_features"),
            self.record_generation))

    def _on_demand_plan(self, key: object, features: FeatureSelection,
                        full_feature_names: bool) -> OnDemandPlan | None:
        """The selection and functions of a request with on-demand features (None without
        them), kept under ``key`` until the registry changes, as compiled plans are."""
        from headwater.transforms.online import OnDemandPlan

        generation = self._plan_cache().generation
        entry = self._on_demand_plans.get(key)
        if entry is not None and entry[0] == generation:
            return entry[1]
        selection = self.resolve_features(features, full_feature_names,
                                          caller="get_online_features")
        plan = None
        if selection.on_demand:
            plan = OnDemandPlan(selection, self._on_demand_functions(selection))
        if len(self._on_demand_plans) >= MAX_ON_DEMAND_PLANS:
            self._on_demand_plans.clear()
        self._on_demand_plans[key] = (generation, plan)
        return plan

    def materialize(self, start_date: datetime, end_date: datetime,
                    views: Sequence[str] | None = None, *,
                    progress: Progress | None = None) -> list[MaterializeResult]:
        """Copy, per entity, the latest row with ``start_date <= ts <= end_date`` of each
        online view (or of ``views``) to the online store. Reruns are idempotent; a newer
        online value is never replaced. A view's watermark becomes ``end_date`` when it had
        none or the range joins on to it; a range after a gap, or an older backfill, leaves
        it alone, so ``materialize_incremental`` never skips rows.

        An aggregated view's tile records are rebuilt, per entity, from its events with
        ``ts < end_date`` that a read at or after ``end_date`` needs (the longest window back,
        whatever ``start_date``), so serving at ``end_date`` equals the offline value."""
        start, end = to_utc(start_date), to_utc(end_date)
        if start > end:
            raise DataError(f"materialize: start {start} is after end {end}. Fix: swap them")
        return [self._materialize_one(view, start, end, progress)
                for view in self._online_views(views)]

    def materialize_incremental(self, end_date: datetime, views: Sequence[str] | None = None,
                                *, progress: Progress | None = None) -> list[MaterializeResult]:
        """Materialize each view from its watermark (or, the first time, from ``end_date``
        minus its ttl, or from the beginning without a ttl) up to ``end_date``."""
        end = to_utc(end_date)
        marks = self.registry.backend.watermarks(self.project)
        results = []
        for view in self._online_views(views):
            version = self.registry.record(FeatureView.kind, view.name).version
            mark = marks.get(view.name)
            if mark is not None and mark[0] == version:
                start = mark[1]
            elif view.ttl is not None:
                start = end - view.ttl
            else:
                start = _FAR_PAST
            if start > end:
                continue  # already materialized past end_date
            results.append(self._materialize_one(view, start, end, progress))
        return results

    def _materialize_one(self, view: FeatureView, start: datetime, end: datetime,
                         progress: Progress | None) -> MaterializeResult:
        from headwater.materialize.job import materialize_view
        from headwater.materialize.tiles import materialize_tiles

        version = self.registry.record(FeatureView.kind, view.name).version
        mark = self.registry.backend.watermarks(self.project).get(view.name)
        current = mark[1] if mark is not None and mark[0] == version else None
        generation = self.record_generation(view.name)
        if view.is_aggregated:  # tiles rebuilt from every event a read at >= end needs
            result = materialize_tiles(self.offline, self.online, view, generation, end,
                                       progress=progress)
        else:
            result = materialize_view(self.offline, self.online, view, start, end,
                                      generation=generation, progress=progress)
        # the watermark only advances over a range contiguous with what is online: a range
        # after a gap, or an older backfill, leaves it where it is
        joins_on = current is None or (
            start <= current + timedelta(microseconds=1) and end > current)
        if joins_on:
            self.registry.backend.set_watermark(self.project, view.name, version, end)
        return result

    def _online_views(self, names: Sequence[str] | None) -> list[FeatureView]:
        if names is None:
            return [v for v in self.list_feature_views() if v.online]
        return [self.get_feature_view(name) for name in names]

    # -- models --------------------------------------------------------------------------

    @property
    def models(self) -> ModelRegistry:
        """The model registry: versions, aliases, promotion history, lineage, loading."""
        if self._models is None:
            from headwater.models.registry import ModelRegistry

            self._models = ModelRegistry(self)
        return self._models

    def list_models(self) -> list[ModelSpec]:
        """Every registered model spec."""
        return self.registry.all_of(ModelSpec)

    def get_model(self, name: str) -> ModelSpec:
        """A registered model spec; raises NotFoundError with the known names."""
        return self.registry.typed(ModelSpec, name)

    def list_jobs(self) -> list[Job]:
        """Every registered scheduled job."""
        return self.registry.all_of(Job)

    def list_monitors(self) -> list[Monitor]:
        """Every registered monitor."""
        return self.registry.all_of(Monitor)

    def get_monitor(self, name: str) -> Monitor:
        """A registered monitor; raises NotFoundError with the known names."""
        return self.registry.typed(Monitor, name)

    def run_monitor(self, name: str, *, end: datetime | None = None,
                    alerts: bool = True) -> MonitorRun:
        """Run monitor ``name`` on ``[end - window, end)`` (``end``: now): its checks'
        findings are stored in the registry, and failed ones logged and sent to its
        webhooks (unless ``alerts`` is False); see :mod:`headwater.monitoring.monitors`."""
        from headwater.monitoring.monitors import run_monitor

        return run_monitor(self, name, end=end, alerts=alerts)

    def monitor_runs(self, name: str | None = None, *, since: datetime | None = None,
                     limit: int = 100) -> list[MonitorRun]:
        """Stored monitor runs (of ``name``, or all), newest first; those of a monitor
        deleted since stay readable. NotFoundError for a name with neither runs nor a
        registered monitor."""
        from headwater.registry.monitor_tables import monitor_tables

        runs = monitor_tables(self.registry.backend).list_monitor_runs(
            self.project, name, since=since, limit=limit)
        if name is not None and not runs:
            self.get_monitor(name)  # NotFoundError with the known names, unless registered
        return runs

    def monitor_profile(self, name: str, key: str | None = None, *,
                        since: datetime | None = None, limit: int = 1_000) -> Profile:
        """The profiles that monitor ``name``'s runs (since ``since``, the latest ``limit``)
        stored of ``key`` (a model monitor's ``"<model>:<version>"``), merged: the
        statistics of all their windows together."""
        from headwater.monitoring.monitors import merged_profile

        return merged_profile(self.monitor_runs(name, since=since, limit=limit), key)

    def train(self, model: str, *, progress: Progress | None = None) -> TrainingRun:
        """Train the registered ModelSpec ``model`` and register the result as its next
        version: build the point-in-time training frame from its label source and feature
        service, split it, fit the estimator, evaluate the metrics on the test rows, store
        the artifact (with its SHA-256) and reference statistics, and record the lineage.
        Returns the run with its metrics and version number."""
        from headwater.models.training import train_model

        return train_model(self, model, progress=progress)

    def promote(self, model: str, version: int, alias: str = "production", *,
                force: bool = False) -> AliasEvent:
        """Point ``alias`` of ``model`` at ``version``. The spec's promotion rules for that
        alias must pass (e.g. roc_auc at least the current version's), else RegistryError
        names the failing rule; ``force=True`` skips them and is recorded as forced."""
        return self.models.promote(model, version, alias, force=force)

    def get_model_version(self, ref: str) -> ModelVersion:
        """The version ``ref`` names: ``churn@production``, ``churn:3`` or ``churn``
        (= ``churn@production``)."""
        return self.models.get(ref)

    def load_model(self, ref: str) -> Predictor:
        """The fitted model behind ``ref``, its artifact's SHA-256 verified."""
        return self.models.load(ref)

    def predict(self, model: str, entity_df: Any, *, timestamp_field: str | None = None,
                as_of: datetime | None = None, chunk_rows: int = 100_000,
                progress: Progress | None = None) -> PredictionJob:
        """Batch inference: ``entity_df`` (as for ``get_historical_features``: keys and an
        event time per row, or a SQL query) scored by the model version ``model`` names
        with its features as of each row's time (or, with ``as_of``, of that one time for
        rows that hold only join keys). The result has the entity columns, the
        features and ``prediction`` (and ``probability`` for classifiers); it is computed
        in chunks of ``chunk_rows`` and read with ``.to_arrow()``, ``.to_pandas()`` or
        written with ``.to_parquet(path)``."""
        from headwater.inference.batch import predict_batch

        return predict_batch(self, model, entity_df, timestamp_field=timestamp_field,
                             chunk_rows=chunk_rows, progress=progress, as_of=as_of)

    def read_predictions(self, model: str, start: datetime | None = None,
                         end: datetime | None = None) -> pa.Table:
        """The predictions ``/predict`` logged for ``model`` with ``start <= logged_at <
        end``: request id, time, model version, entity keys, the input features, request
        fields, prediction and probability, one row per entity row (what monitoring
        compares with the training reference)."""
        from headwater.inference.log import read_log

        return read_log(self.settings.predictions_path, model, start, end)

    # -- push ------------------------------------------------------------------------------

    def push(self, view: str, rows: Any, to: str | None = None) -> PushResult:
        """Write rows to a feature view now: ``to`` is ``"online"`` (the default for a view's
        rows), ``"offline"`` or ``"both"`` (the default for a source's events).

        ``rows`` (a list of dicts, a pandas or polars DataFrame or an Arrow table) hold the
        view's join keys, its source's timestamp field (and optionally its created field)
        and every declared feature; values are cast to the declared dtypes and naive
        timestamps are UTC, anything else is a DataError naming the column and the fix.
        Online, an older row never replaces a newer value. Offline, the rows become a new
        Parquet file in the view's folder FileSource, seen by ``get_historical_features``.
        ``"both"`` writes offline first, so a failed online write loses nothing.

        ``view`` may also name a PushSource or StreamSource (or an aggregated view): the rows
        are then events, validated once for every view of that source, appended to its
        batch source partitioned by date (``date=YYYY-MM-DD/``) and applied to each view
        online (tiles for aggregated views, latest values for the others). Events pushed
        ``to="online"`` only are not in the offline copy, so a later ``materialize``, which
        rebuilds tiles from it, forgets them."""
        from headwater.streaming.push import push

        return push(self, view, rows, to)

    def close(self) -> None:
        """Release the registry connection, the stores and the background refresher."""
        if self._plans is not None:
            self._plans.close()
            self._plans = None
        if self._online is not None:
            self._online.close()
            self._online = None
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

