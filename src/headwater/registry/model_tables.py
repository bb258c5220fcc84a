"""The model registry's tables, in the same database as the catalog.

- ``hw_model_versions``  one row per model version (never rewritten): run id, task, the
  record as JSON (features, params, metrics, lineage, artifact refs)
- ``hw_model_aliases``   the version each alias points at (one row per alias, moved in place)
- ``hw_model_events``    the append-only history of alias moves (promotions)

:class:`ModelTables` is mixed into :class:`~headwater.registry.sql.SQLRegistryBackend`, so
SQLite and PostgreSQL share these statements; the DDL differs only in types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headwater.models.base import AliasEvent, ModelVersion

SQLITE_DDL = (
    """CREATE TABLE IF NOT EXISTS hw_model_versions (
    project TEXT NOT NULL, model TEXT NOT NULL, version INTEGER NOT NULL,
    run_id TEXT NOT NULL, record TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (project, model, version))""",
    """CREATE TABLE IF NOT EXISTS hw_model_aliases (
    project TEXT NOT NULL, model TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (project, model, alias))""",
    """CREATE TABLE IF NOT EXISTS hw_model_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, model TEXT NOT NULL,
    alias TEXT NOT NULL, from_version INTEGER, to_version INTEGER, reason TEXT NOT NULL,
    checks TEXT NOT NULL, at TEXT NOT NULL)""",
    """CREATE TRIGGER IF NOT EXISTS hw_model_versions_immutable_u BEFORE UPDATE
    ON hw_model_versions BEGIN SELECT RAISE(ABORT, 'hw_model_versions is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS hw_model_events_append_only_u BEFORE UPDATE
    ON hw_model_events BEGIN SELECT RAISE(ABORT, 'hw_model_events is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS hw_model_events_append_only_d BEFORE DELETE
    ON hw_model_events BEGIN SELECT RAISE(ABORT, 'hw_model_events is append-only'); END""",
)

POSTGRES_DDL = (
    """CREATE TABLE IF NOT EXISTS {p}hw_model_versions (
    project TEXT NOT NULL, model TEXT NOT NULL, version INTEGER NOT NULL,
    run_id TEXT NOT NULL, record JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project, model, version))""",
    """CREATE TABLE IF NOT EXISTS {p}hw_model_aliases (
    project TEXT NOT NULL, model TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (project, model, alias))""",
    """CREATE TABLE IF NOT EXISTS {p}hw_model_events (
    id BIGSERIAL PRIMARY KEY, project TEXT NOT NULL, model TEXT NOT NULL,
    alias TEXT NOT NULL, from_version INTEGER, to_version INTEGER, reason TEXT NOT NULL,
    checks JSONB NOT NULL, at TIMESTAMPTZ NOT NULL)""",
    """CREATE OR REPLACE TRIGGER hw_model_versions_immutable BEFORE UPDATE
    ON {p}hw_model_versions FOR EACH ROW EXECUTE FUNCTION {p}hw_append_only()""",
    """CREATE OR REPLACE TRIGGER hw_model_events_append_only BEFORE UPDATE OR DELETE
    ON {p}hw_model_events FOR EACH ROW EXECUTE FUNCTION {p}hw_append_only()""",
)

AliasGuard = Callable[[int | None], list[dict[str, Any]]]
"""Called inside the alias-move transaction with the alias's current version (None when
unset); returns the promotion checks to record, or raises to abort the move."""


class ModelTables:
    """Model-registry storage methods (see the module docstring for the tables).

    Relies on the host class's ``_sql``, ``_exclusive``, ``_read`` and ``_time_param``
    (:class:`~headwater.registry.sql.SQLRegistryBackend`)."""

    def add_model_version(self, project: str, version: ModelVersion) -> ModelVersion:
        """Insert ``version`` under the next free number for its model (its ``version``
        field is ignored) in one exclusive transaction; returns it with the number."""
        raise NotImplementedError

    def model_versions(self, project: str, model: str) -> list[ModelVersion]:
        """Every version of ``model``, oldest first, with current aliases filled in."""
        raise NotImplementedError

    def model_version(self, project: str, model: str, version: int) -> ModelVersion | None:
        """One version (aliases filled in), or None."""
        raise NotImplementedError

    def model_names(self, project: str) -> list[str]:
        """Names of models with at least one version, sorted."""
        raise NotImplementedError

    def aliases(self, project: str, model: str) -> dict[str, int]:
        """alias -> version for ``model``."""
        raise NotImplementedError

    def move_alias(self, project: str, model: str, alias: str, version: int | None, *,
                   reason: str, guard: AliasGuard | None = None) -> AliasEvent:
        """Point ``alias`` at ``version`` (None removes it) and append the event, in one
        exclusive transaction; ``guard`` runs inside it (see :data:`AliasGuard`)."""
        raise NotImplementedError

    def alias_events(self, project: str, model: str | None = None) -> list[AliasEvent]:
        """The promotion history, oldest first (of one model, or of all)."""
        raise NotImplementedError
