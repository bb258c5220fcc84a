"""The registry storage protocol and the records it keeps.

A backend stores, per project, one row per object version (``RegistryRecord``), a head per
object pointing at its current version, and an append-only change log (``ChangeRecord``).
Backends know nothing of definitions: they store specs as JSON text. All writes go through
:meth:`RegistryBackend.write`, which runs the caller's diff inside one exclusive transaction,
so two concurrent ``apply`` calls serialize and each sees the other's result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

ObjectKey = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class RegistryRecord:
    """One stored version of one object."""

    kind: str
    name: str
    version: int
    spec: dict[str, Any]
    spec_hash: str
    created_at: datetime

    @property
    def key(self) -> ObjectKey:
        return (self.kind, self.name)


@dataclass(frozen=True)
class ChangeRecord:
    """One line of the append-only change log."""

    id: int
    apply_id: str
    kind: str
    name: str
    action: str  # "create" | "update" | "delete"
    from_version: int | None
    to_version: int | None
    at: datetime


@dataclass(frozen=True)
class Change:
    """A change a diff asks the backend to write.

    For ``create`` and ``update`` ``spec`` and ``spec_hash`` are the new version's; for
    ``delete`` they are None. The backend assigns version numbers.
    """

    action: str
    kind: str
    name: str
    spec: dict[str, Any] | None = None
    spec_hash: str | None = None


Diff = Callable[[Mapping[ObjectKey, RegistryRecord]], list[Change]]


class RegistryBackend(Protocol):
    """Storage for the catalog. Implementations: ``sqlite.py``, ``postgres.py``."""

    def heads(self, project: str) -> dict[ObjectKey, RegistryRecord]:
        """The current version of every live object of the project."""
        ...

    def history(self, project: str, kind: str, name: str) -> list[RegistryRecord]:
        """Every stored version of one object, oldest first (deleted objects included)."""
        ...

    def changes(self, project: str, after_id: int = 0) -> list[ChangeRecord]:
        """Change-log lines with ``id > after_id``, oldest first."""
        ...

    def last_change_id(self, project: str) -> int:
        """The id of the newest change-log line, 0 when there is none (a cheap query)."""
        ...

    def write(self, project: str, diff: Diff) -> list[ChangeRecord]:
        """In one exclusive transaction: read the heads, call ``diff(heads)``, write each
        change as a new version / head update / head removal plus a change-log line, commit.
        If ``diff`` raises, nothing is written. Returns the change-log lines written."""
        ...

    def watermarks(self, project: str) -> dict[str, tuple[int, datetime]]:
        """Per feature view: ``(view version, watermark)`` of its last materialization."""
        ...

    def set_watermark(self, project: str, view: str, version: int, watermark: datetime) -> None:
        """Record that ``view`` at ``version`` is materialized up to ``watermark`` (one row
        per view, replaced in place)."""
        ...

    def close(self) -> None: ...
