"""Registry: the catalog of one project, as definitions.

It turns stored specs back into definitions (resolving references), caches them until the
change log moves, and runs ``plan``/``apply`` through the backend's single write path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from headwater.definitions import Definition
from headwater.errors import NotFoundError
from headwater.registry.base import (
    Change,
    ChangeRecord,
    ObjectKey,
    RegistryBackend,
    RegistryRecord,
)
from headwater.registry.plan import Plan, check_references, diff, plan_from

if TYPE_CHECKING:
    from headwater.config import Settings

_D = TypeVar("_D", bound=Definition)
_V = TypeVar("_V")


class Registry:
    """The catalog of ``project`` stored in ``backend``."""

    def __init__(self, backend: RegistryBackend, project: str) -> None:
        self.backend = backend
        self.project = project
        self._cache_id = -1
        self._objects: dict[ObjectKey, Definition] = {}
        self._records: dict[ObjectKey, RegistryRecord] = {}
        self._derived: dict[object, object] = {}

    def plan(self, objects: Sequence[Definition], *, prune: bool = False) -> Plan:
        """What :meth:`apply` would change, computed against the current catalog."""
        heads = self.backend.heads(self.project)
        return plan_from(diff(heads, objects, prune), heads, objects, None)

    def apply(self, objects: Sequence[Definition], *, prune: bool = False) -> Plan:
        """Register ``objects`` in one transaction; returns the plan as applied."""
        seen: list[tuple[dict[ObjectKey, RegistryRecord], list[Change]]] = []

        def run(heads: Mapping[ObjectKey, RegistryRecord]) -> list[Change]:
            changes = diff(heads, objects, prune)
            seen.append((dict(heads), changes))  # the last run is the one committed
            return changes

        written = self.backend.write(self.project, run)
        self._cache_id = -1
        heads, changes = seen[-1]
        return plan_from(changes, heads, objects, written)

    def refresh(self) -> None:
        """Reload the catalog if the change log moved since the last read."""
        latest = self.backend.last_change_id(self.project)
        if latest == self._cache_id:
            return
        records = self.backend.heads(self.project)
        self._objects = check_references({k: r.spec for k, r in records.items()})
        self._records = records
        self._derived = {}
        self._cache_id = latest

    def get(self, kind: str, name: str) -> Definition:
        """The current definition of one object; NotFoundError lists the known names."""
        self.refresh()
        try:
            return self._objects[(kind, name)]
        except KeyError:
            known = sorted(n for k, n in self._objects if k == kind)
            raise NotFoundError(
                f"no {kind} named '{name}' in project '{self.project}'; registered: "
                f"{known or 'none'}. Fix: check the name, or apply it first"
            ) from None

    def record(self, kind: str, name: str) -> RegistryRecord:
        """The stored record (version, hash, time) behind :meth:`get`."""
        self.get(kind, name)
        return self._records[(kind, name)]

    def list_objects(self, kind: str | None = None) -> list[Definition]:
        """Current definitions, of one kind or all, sorted by name."""
        self.refresh()
        return [obj for (k, n), obj in sorted(self._objects.items(), key=lambda kv: kv[0][1])
                if kind is None or k == kind]

    def typed(self, cls: type[_D], name: str) -> _D:
        """The current definition of ``cls.kind`` named ``name``, typed as ``cls``."""
        obj = self.get(cls.kind, name)
        if not isinstance(obj, cls):
            raise NotFoundError(f"{obj.kind} '{name}' is not a {cls.__name__}")
        return obj

    def all_of(self, cls: type[_D]) -> list[_D]:
        """Every current definition of ``cls.kind``, sorted by name."""
        return [obj for obj in self.list_objects(cls.kind) if isinstance(obj, cls)]

    def derived(self, key: object, compute: Callable[[], _V]) -> _V:
        """A value computed from the catalog, kept until the change log moves (the same
        single-query check as :meth:`get`)."""
        self.refresh()
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]  # type: ignore[return-value]

    def history(self, kind: str, name: str) -> list[RegistryRecord]:
        """Every stored version of an object, oldest first."""
        return self.backend.history(self.project, kind, name)

    def changes(self, after_id: int = 0) -> list[ChangeRecord]:
        """The change log of the project, oldest first."""
        return self.backend.changes(self.project, after_id)

    def close(self) -> None:
        self.backend.close()


def open_backend(settings: Settings) -> RegistryBackend:
    """The registry backend named by ``settings.registry`` (imported only now)."""
    if settings.registry.backend == "postgres":
        from headwater.registry.postgres import PostgresRegistry

        return PostgresRegistry(settings.registry.url, settings.registry.schema)
    from headwater.registry.sqlite import SQLiteRegistry

    return SQLiteRegistry(settings.registry.url)


def open_registry(settings: Settings) -> Registry:
    """The catalog of the settings' project."""
    return Registry(open_backend(settings), settings.project)
