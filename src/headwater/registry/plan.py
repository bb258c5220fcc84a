"""Plans: the diff between the registered catalog and the definitions being applied.

:func:`diff` is pure. It runs inside the backend's write transaction against the heads read
there, so concurrent applies serialize and each diff sees the other's result. It checks the
state the catalog would end in (every reference resolves) before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from headwater.definitions import (
    TOP_LEVEL_KINDS,
    Definition,
    FeatureService,
    FeatureView,
    ModelSpec,
    Monitor,
    OnDemandFeatureView,
)
from headwater.definitions.base import from_spec
from headwater.errors import DefinitionError, RegistryError
from headwater.registry.base import Change, ChangeRecord, ObjectKey, RegistryRecord

_KIND_ORDER = {kind: i for i, kind in enumerate(TOP_LEVEL_KINDS)}


@dataclass(frozen=True)
class PlannedChange:
    """One line of a plan: what happens to one object.

    ``fields`` lists the top-level spec fields an update changes (``ttl``, ``schema``, ...).
    ``to_version`` is the version the object gets (predicted by ``plan``, actual after
    ``apply``); None for a delete.
    """

    action: str
    kind: str
    name: str
    from_version: int | None
    to_version: int | None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        versions = {
            "create": f"v{self.to_version}",
            "update": f"v{self.from_version} -> v{self.to_version}",
            "delete": f"v{self.from_version}",
        }[self.action]
        changed = f" (changed: {', '.join(self.fields)})" if self.fields else ""
        return f"{sign} {self.kind} {self.name} {versions}{changed}"


@dataclass(frozen=True)
class Plan:
    """What an apply would do (``applied=False``) or did (``applied=True``)."""

    changes: tuple[PlannedChange, ...]
    unchanged: tuple[ObjectKey, ...]
    applied: bool

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def of(self, action: str) -> list[PlannedChange]:
        """The changes with one action: ``create``, ``update`` or ``delete``."""
        return [c for c in self.changes if c.action == action]

    def __str__(self) -> str:
        if not self.changes:
            return f"No changes. {len(self.unchanged)} object(s) up to date."
        verb = "Applied" if self.applied else "Plan"
        counts = ", ".join(f"{len(self.of(a))} to {a}" for a in ("create", "update", "delete"))
        lines = [str(c) for c in self.changes]
        return "\n".join([*lines, f"{verb}: {counts}; {len(self.unchanged)} unchanged."])


def diff(
    heads: Mapping[ObjectKey, RegistryRecord],
    desired: Sequence[Definition],
    prune: bool,
) -> list[Change]:
    """The changes that take the catalog from ``heads`` to ``desired``.

    Objects not in ``desired`` stay unless ``prune`` is set. Raises DefinitionError for two
    different definitions with one name, RegistryError when the resulting catalog would hold
    a dangling reference."""
    wanted: dict[ObjectKey, Definition] = {}
    for obj in desired:
        key = (obj.kind, obj.name)
        if key in wanted and wanted[key].spec_hash() != obj.spec_hash():
            raise DefinitionError(
                f"{type(obj).__name__} '{obj.name}'", "name",
                "two different definitions share this name", "rename one of them",
            )
        wanted[key] = obj
    changes = []
    for key, obj in sorted(wanted.items(), key=lambda kv: _order(kv[0])):
        head = heads.get(key)
        digest = obj.spec_hash()
        if head is None:
            changes.append(Change("create", obj.kind, obj.name, obj.spec(), digest))
        elif head.spec_hash != digest:
            changes.append(Change("update", obj.kind, obj.name, obj.spec(), digest))
    if prune:
        for key in sorted(set(heads) - set(wanted), key=_order, reverse=True):
            changes.append(Change("delete", key[0], key[1]))
    final = {key: rec.spec for key, rec in heads.items()}
    for change in changes:
        if change.action == "delete":
            del final[(change.kind, change.name)]
        elif change.spec is not None:
            final[(change.kind, change.name)] = change.spec
    check_references(final)
    return changes


def _monitored(monitor: Monitor) -> ObjectKey:
    """The kind and name of what ``monitor`` watches."""
    if monitor.model:
        return ModelSpec.kind, monitor.model
    if monitor.feature_view:
        return FeatureView.kind, monitor.feature_view
    return FeatureService.kind, monitor.feature_service


def check_references(specs: Mapping[ObjectKey, dict[str, object]]) -> dict[ObjectKey, Definition]:
    """Decode a whole catalog state; raise RegistryError if any reference dangles."""
    decoded: dict[ObjectKey, Definition] = {}

    def resolve(kind: str, name: str, referrer: ObjectKey) -> Definition:
        key = (kind, name)
        if key not in decoded:
            if key not in specs:
                raise RegistryError(
                    f"{referrer[0]} '{referrer[1]}' refers to {kind} '{name}', which is not "
                    f"registered. Fix: apply {kind} '{name}' in the same call, or stop "
                    f"referring to it before deleting it"
                )
            decoded[key] = from_spec(specs[key], lambda k, n: resolve(k, n, key))
        return decoded[key]

    for key in sorted(specs, key=_order):
        resolve(*key, referrer=key)
    for obj in decoded.values():
        if isinstance(obj, OnDemandFeatureView):
            _check_on_demand(obj, decoded)
        elif isinstance(obj, Monitor):
            kind, name = _monitored(obj)
            if (kind, name) not in decoded:
                raise RegistryError(
                    f"monitor '{obj.name}' watches {kind} '{name}', which is not registered. "
                    f"Fix: apply {kind} '{name}' in the same call, or delete the monitor "
                    "before its subject")
        elif isinstance(obj, FeatureService):
            for projection in obj.features:
                view = decoded.get((FeatureView.kind, projection.view)) or decoded.get(
                    (OnDemandFeatureView.kind, projection.view))
                if not isinstance(view, FeatureView | OnDemandFeatureView):
                    raise RegistryError(
                        f"feature_service '{obj.name}' selects feature view "
                        f"'{projection.view}', which is not registered. Fix: apply the view "
                        "in the same call, or remove it from the service"
                    )
                missing = sorted(set(projection.features or ()) - set(view.feature_names))
                if missing:
                    raise RegistryError(
                        f"feature_service '{obj.name}' selects {missing} from feature view "
                        f"'{view.name}', which has only {list(view.feature_names)}. Fix: select "
                        "existing features"
                    )
    return decoded


def _check_on_demand(view: OnDemandFeatureView,
                     decoded: Mapping[ObjectKey, Definition]) -> None:
    """An on-demand view's name is not a feature view's, its source views are registered,
    and its inputs resolve to distinct columns (DefinitionError otherwise)."""
    if (FeatureView.kind, view.name) in decoded:
        raise DefinitionError(
            f"OnDemandFeatureView '{view.name}'", "name",
            f"feature view '{view.name}' has the same name, so '{view.name}:feature' would "
            "be ambiguous", "rename the on-demand view")

    def lookup(name: str) -> FeatureView:
        source = decoded.get((FeatureView.kind, name))
        if not isinstance(source, FeatureView):
            raise RegistryError(
                f"on_demand_feature_view '{view.name}' reads feature view '{name}', which is "
                f"not registered. Fix: apply feature view '{name}' in the same call, or "
                "remove it from the sources")
        return source

    view.inputs(lookup)


def plan_from(changes: Sequence[Change], heads: Mapping[ObjectKey, RegistryRecord],
              desired: Sequence[Definition], written: Sequence[ChangeRecord] | None) -> Plan:
    """Describe ``changes`` as a Plan, with the versions written (or predicted)."""
    actual = {(r.kind, r.name): r.to_version for r in written or ()}
    lines = []
    for change in changes:
        key = (change.kind, change.name)
        head = heads.get(key)
        from_version = head.version if head else None
        to_version = actual.get(key) if written is not None else (
            None if change.action == "delete" else (from_version or 0) + 1
        )
        fields: tuple[str, ...] = ()
        if change.action == "update" and head is not None and change.spec is not None:
            fields = tuple(sorted(k for k in set(head.spec) | set(change.spec)
                                  if head.spec.get(k) != change.spec.get(k)))
        lines.append(PlannedChange(change.action, change.kind, change.name, from_version,
                                   to_version, fields))
    touched = {(c.kind, c.name) for c in changes}
    unchanged = tuple(sorted({(o.kind, o.name) for o in desired} - touched, key=_order))
    return Plan(tuple(lines), unchanged, applied=written is not None)


def _order(key: ObjectKey) -> tuple[int, str]:
    return (_KIND_ORDER.get(key[0], len(_KIND_ORDER)), key[1])
