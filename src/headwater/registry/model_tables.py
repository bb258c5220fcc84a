"""The model registry's tables, in the same database as the catalog.

- ``hw_model_versions``  one row per model version (never rewritten): run id, task, the
  record as JSON (features, params, metrics, lineage, artifact refs)
- ``hw_model_aliases``   the version each alias points at (one row per alias, moved in place)
- ``hw_model_events``    the append-only history of alias moves (promotions)

:class:`ModelTables` is mixed into :class:`~headwater.registry.sql.SQLRegistryBackend`, so
SQLite and PostgreSQL share these statements; the DDL differs only in types.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from headwater.errors import NotFoundError, RegistryError
from headwater.models.base import AliasEvent, ArtifactRef, ModelVersion
from headwater.registry.tables import SQLHost

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
    """CREATE TRIGGER IF NOT EXISTS hw_model_versions_immutable_d BEFORE DELETE
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
    """CREATE OR REPLACE TRIGGER hw_model_versions_immutable BEFORE UPDATE OR DELETE
    ON {p}hw_model_versions FOR EACH ROW EXECUTE FUNCTION {p}hw_append_only()""",
    """CREATE OR REPLACE TRIGGER hw_model_events_append_only BEFORE UPDATE OR DELETE
    ON {p}hw_model_events FOR EACH ROW EXECUTE FUNCTION {p}hw_append_only()""",
)

AliasGuard = Callable[[int | None], list[dict[str, Any]]]
"""Called inside the alias-move transaction with the alias's current version (None when
unset); returns the promotion checks to record, or raises to abort the move."""

_FLOAT = "$float"
_RECORD_SKIP = ("model", "version", "run_id", "created_at", "aliases")
_VERSION_COLUMNS = "model, version, run_id, record, created_at"
_EVENT_COLUMNS = "id, model, alias, from_version, to_version, reason, checks, at"


class ModelTables(SQLHost):
    """Model-registry storage methods (see the module docstring for the tables).

    Relies on the host class's ``_sql``, ``_exclusive``, ``_read`` and ``_time_param``
    (:class:`~headwater.registry.sql.SQLRegistryBackend`). Version numbers are assigned
    inside the project's exclusive transaction, so two concurrent registrations never get
    the same number; an alias move and its history line commit together or not at all."""

    def add_model_version(self, project: str, version: ModelVersion) -> ModelVersion:
        """Insert ``version`` under the next free number for its model (its ``version``
        field is ignored) in one exclusive transaction; returns it with the number."""
        record = _dumps(_record_of(version))
        with self._exclusive(project) as cur:
            cur.execute(self._sql("SELECT MAX(version) FROM {p}hw_model_versions "
                                  "WHERE project = ? AND model = ?"), (project, version.model))
            row = cur.fetchone()
            number = (int(row[0]) if row and row[0] is not None else 0) + 1
            cur.execute(self._sql(
                "INSERT INTO {p}hw_model_versions (project, model, version, run_id, record, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)"),
                (project, version.model, number, version.run_id, record,
                 self._time_param(version.created_at)))
        return dataclasses.replace(version, version=number, aliases=())

    def model_versions(self, project: str, model: str) -> list[ModelVersion]:
        """Every version of ``model``, oldest first, with current aliases filled in."""
        with self._read() as cur:
            cur.execute(self._sql(
                f"SELECT {_VERSION_COLUMNS} FROM {{p}}hw_model_versions "
                "WHERE project = ? AND model = ? ORDER BY version"), (project, model))
            rows = cur.fetchall()
            aliases = self._aliases(cur, project, model)
        return [_version(row, aliases) for row in rows]

    def model_version(self, project: str, model: str, version: int) -> ModelVersion | None:
        """One version (aliases filled in), or None."""
        with self._read() as cur:
            cur.execute(self._sql(
                f"SELECT {_VERSION_COLUMNS} FROM {{p}}hw_model_versions "
                "WHERE project = ? AND model = ? AND version = ?"), (project, model, version))
            row = cur.fetchone()
            if row is None:
                return None
            return _version(row, self._aliases(cur, project, model))

    def model_names(self, project: str) -> list[str]:
        """Names of models with at least one version, sorted."""
        with self._read() as cur:
            cur.execute(self._sql("SELECT DISTINCT model FROM {p}hw_model_versions "
                                  "WHERE project = ? ORDER BY model"), (project,))
            return [str(row[0]) for row in cur.fetchall()]

    def aliases(self, project: str, model: str) -> dict[str, int]:
        """alias -> version for ``model``."""
        with self._read() as cur:
            return self._aliases(cur, project, model)

    def _aliases(self, cur: Any, project: str, model: str) -> dict[str, int]:
        cur.execute(self._sql("SELECT alias, version FROM {p}hw_model_aliases "
                              "WHERE project = ? AND model = ? ORDER BY alias"), (project, model))
        return {str(row[0]): int(row[1]) for row in cur.fetchall()}

    def move_alias(self, project: str, model: str, alias: str, version: int | None, *,
                   reason: str, guard: AliasGuard | None = None) -> AliasEvent:
        """Point ``alias`` at ``version`` (None removes it) and append the event, in one
        exclusive transaction; ``guard`` runs inside it (see :data:`AliasGuard`).

        A version that does not exist, or removing an alias that is not set, is a
        NotFoundError; whatever raises (the guard included) leaves both tables untouched."""
        now = datetime.now(UTC)
        key = (project, model, alias)
        with self._exclusive(project) as cur:
            if version is not None:
                cur.execute(self._sql("SELECT 1 FROM {p}hw_model_versions "
                                      "WHERE project = ? AND model = ? AND version = ?"),
                            (project, model, version))
                if cur.fetchone() is None:
                    raise NotFoundError(
                        f"model '{model}' has no version {version} in project '{project}'. "
                        "Fix: list its versions with 'headwater models show "
                        f"{model}' and pick one of them")
            cur.execute(self._sql("SELECT version FROM {p}hw_model_aliases "
                                  "WHERE project = ? AND model = ? AND alias = ?"), key)
            row = cur.fetchone()
            current = int(row[0]) if row else None
            if version is None and current is None:
                raise NotFoundError(f"model '{model}' has no alias '{alias}' to remove. Fix: "
                                    f"check the alias name ('headwater models show {model}')")
            checks = guard(current) if guard is not None else []
            stamp = self._time_param(now)
            if version is None:
                cur.execute(self._sql("DELETE FROM {p}hw_model_aliases "
                                      "WHERE project = ? AND model = ? AND alias = ?"), key)
            elif current is None:
                cur.execute(self._sql(
                    "INSERT INTO {p}hw_model_aliases (project, model, alias, version, "
                    "updated_at) VALUES (?, ?, ?, ?, ?)"), (*key, version, stamp))
            else:
                cur.execute(self._sql(
                    "UPDATE {p}hw_model_aliases SET version = ?, updated_at = ? "
                    "WHERE project = ? AND model = ? AND alias = ?"), (version, stamp, *key))
            cur.execute(self._sql(
                "INSERT INTO {p}hw_model_events (project, model, alias, from_version, "
                "to_version, reason, checks, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                (*key, current, version, reason, _dumps(checks), stamp))
            (event_id,) = cur.fetchone()
        return AliasEvent(int(event_id), model, alias, current, version, reason,
                          tuple(checks), now)

    def alias_events(self, project: str, model: str | None = None) -> list[AliasEvent]:
        """The promotion history, oldest first (of one model, or of all)."""
        where, params = ("project = ?", (project,)) if model is None else (
            "project = ? AND model = ?", (project, model))
        with self._read() as cur:
            cur.execute(self._sql(f"SELECT {_EVENT_COLUMNS} FROM {{p}}hw_model_events "
                                  f"WHERE {where} ORDER BY id"), params)
            rows = cur.fetchall()
        return [AliasEvent(int(r[0]), str(r[1]), str(r[2]), _int(r[3]), _int(r[4]), str(r[5]),
                           tuple(_loads(r[6])), _time(r[7])) for r in rows]


def _record_of(version: ModelVersion) -> dict[str, Any]:
    """The JSON record column: the version minus the fields that have columns."""
    record = {f.name: getattr(version, f.name) for f in dataclasses.fields(version)
              if f.name not in _RECORD_SKIP}
    record["features"] = list(version.features)
    record["classes"] = list(version.classes)
    record["artifact"] = version.artifact.to_dict()
    record["reference"] = version.reference.to_dict() if version.reference else None
    return record


def _version(row: Sequence[Any], aliases: dict[str, int]) -> ModelVersion:
    record = _loads(row[3])
    number = int(row[1])
    reference = record.get("reference")
    return ModelVersion(
        model=str(row[0]), version=number, run_id=str(row[2]), task=record["task"],
        estimator_class=record["estimator_class"], features=tuple(record["features"]),
        params=record["params"], metrics=record["metrics"], lineage=record["lineage"],
        artifact=ArtifactRef.from_dict(record["artifact"]),
        reference=ArtifactRef.from_dict(reference) if reference else None,
        created_at=_time(row[4]), classes=tuple(record.get("classes", ())),
        input_kind=record.get("input_kind", "matrix"),
        feature_types=record.get("feature_types", {}),
        aliases=tuple(sorted(a for a, v in aliases.items() if v == number)))


def _dumps(value: Any) -> str:
    """Canonical JSON that PostgreSQL's JSONB accepts: non-finite floats (NaN metrics) are
    written as ``{"$float": "nan"}``, numpy scalars as Python numbers."""
    try:
        return json.dumps(_encode(value), sort_keys=True, allow_nan=False, default=_scalar)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"a model record holds a value JSON cannot store: {exc}. Fix: "
                            "record params, metrics and lineage as JSON scalars, lists and "
                            "dicts") from exc


def _encode(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT: repr(value)}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return _encode(item())  # a numpy scalar
    return value


def _scalar(value: Any) -> Any:
    raise TypeError(f"{value!r} of type {type(value).__name__} is not JSON")


def _loads(value: Any) -> Any:
    return _decode(json.loads(value) if isinstance(value, str | bytes) else value)


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_FLOAT}:
            return float(value[_FLOAT])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))
