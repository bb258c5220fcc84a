"""The monitors' table, in the same database as the catalog.

- ``hw_monitor_runs``  one row per run of a monitor (never rewritten): when it ran, the
  time window it looked at, how it ended, every finding it made (JSON text), the error of a
  run that raised, how many alerts it sent and the profiles of the data it looked at
  (:class:`~headwater.monitoring.profile.Profile` JSON, mergeable across runs). Indexed
  on ``(project, monitor, started_at)`` for "the latest runs of this monitor".

A run's ``status`` is ``"ok"`` (no finding failed), ``"alert"`` (at least one failed) or
``"error"`` (the run raised; ``error`` says why, ``findings`` holds what it made before).
:meth:`MonitorTables.record_monitor_run` refuses a status that contradicts the findings,
so a stored ``"ok"`` always means nothing failed.

Times are stored in UTC (a naive datetime is taken as UTC, as the scheduler's table does)
and come back timezone-aware in UTC. Findings are stored with
:meth:`~headwater.monitoring.findings.Finding.to_dict` and read back with ``from_dict``;
their ``details`` come back as JSON gives them (tuples as lists, numpy scalars as Python
numbers; non-finite floats survive, the column is text, not JSONB).

:class:`MonitorTables` is mixed into :class:`~headwater.registry.sql.SQLRegistryBackend`,
so SQLite and PostgreSQL share these statements; the DDL differs only in types. Writes go
through ``_exclusive`` (the project's write lock), reads through ``_read``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from headwater.errors import RegistryError
from headwater.monitoring.findings import Finding, HasFindings
from headwater.registry.tables import SQLHost, optional_stored_time, stored_time

if TYPE_CHECKING:
    from headwater.monitoring.profile import Profile

MONITOR_STATUSES = ("ok", "alert", "error")

_COLUMNS = ("id, project, monitor, started_at, finished_at, window_start, window_end, "
            "status, findings, error, alerts_sent, profiles")

SQLITE_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS hw_monitor_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, monitor TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT NOT NULL, window_start TEXT, window_end TEXT,
    status TEXT NOT NULL, findings TEXT NOT NULL, error TEXT,
    alerts_sent INTEGER NOT NULL, profiles TEXT)""",
    """CREATE INDEX IF NOT EXISTS hw_monitor_runs_recent
    ON hw_monitor_runs (project, monitor, started_at)""",
)
POSTGRES_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS {p}hw_monitor_runs (
    id BIGSERIAL PRIMARY KEY, project TEXT NOT NULL, monitor TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ NOT NULL,
    window_start TIMESTAMPTZ, window_end TIMESTAMPTZ, status TEXT NOT NULL,
    findings TEXT NOT NULL, error TEXT, alerts_sent INTEGER NOT NULL, profiles TEXT)""",
    """CREATE INDEX IF NOT EXISTS hw_monitor_runs_recent
    ON {p}hw_monitor_runs (project, monitor, started_at)""",
)


@dataclass(frozen=True)
class MonitorRun(HasFindings):
    """One stored run of a monitor (see the module docstring for the fields' meaning)."""

    id: int
    project: str
    monitor: str
    started_at: datetime
    finished_at: datetime
    window_start: datetime | None
    window_end: datetime | None
    status: str
    findings: tuple[Finding, ...]
    error: str | None
    alerts_sent: int
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    """Mergeable profiles of the data the run looked at, by what they profile (for a model
    monitor, ``"<model>:<version>"``: the logged inputs and outputs of that version in the
    window, binned with the edges of its training reference, so windows combine)."""


    def to_dict(self) -> dict[str, Any]:
        """JSON-able: datetimes as ISO 8601 strings, findings as ``Finding.to_dict()``."""
        return {
            "id": self.id, "project": self.project, "monitor": self.monitor,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "window_start": _iso(self.window_start), "window_end": _iso(self.window_end),
            "status": self.status, "findings": [f.to_dict() for f in self.findings],
            "error": self.error, "alerts_sent": self.alerts_sent,
            "profiles": {k: v.to_dict() for k, v in self.profiles.items()},
        }


class MonitorTables(SQLHost):
    """Monitor-run storage methods (see the module docstring for the table).

    Relies on the host class's ``_sql``, ``_exclusive``, ``_read`` and ``_time_param``
    (:class:`~headwater.registry.sql.SQLRegistryBackend`)."""

    def record_monitor_run(self, project: str, monitor: str, *, started_at: datetime,
                           finished_at: datetime, window_start: datetime | None,
                           window_end: datetime | None, status: str,
                           findings: Sequence[Finding], error: str | None = None,
                           alerts_sent: int = 0,
                           profiles: Mapping[str, Profile] | None = None) -> MonitorRun:
        """Store one run of ``monitor`` and return it as stored (times in UTC, with its id).

        Raises ValueError, writing nothing, when ``status`` is not one of ``"ok"``,
        ``"alert"``, ``"error"`` or contradicts the findings (``"ok"`` with a failed
        finding, ``"alert"`` without one), when an ``"error"`` run has no ``error`` text,
        when ``finished_at`` is before ``started_at`` or ``window_end`` before
        ``window_start``, or when ``alerts_sent`` is negative; RegistryError when a
        finding's ``details`` hold a value JSON cannot store."""
        run = MonitorRun(
            id=0, project=project, monitor=monitor, started_at=_utc(started_at),
            finished_at=_utc(finished_at), window_start=_optional_utc(window_start),
            window_end=_optional_utc(window_end), status=status, findings=tuple(findings),
            error=error, alerts_sent=alerts_sent, profiles=dict(profiles or {}))
        _validate(run)
        payload = _dumps(run)
        profiled = (json.dumps({k: v.to_dict() for k, v in run.profiles.items()})
                    if run.profiles else None)
        with self._exclusive(project) as cur:
            cur.execute(self._sql(
                "INSERT INTO {p}hw_monitor_runs (project, monitor, started_at, finished_at, "
                "window_start, window_end, status, findings, error, alerts_sent, profiles) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                (project, monitor, self._time_param(run.started_at),
                 self._time_param(run.finished_at), self._optional_param(run.window_start),
                 self._optional_param(run.window_end), status, payload, error, alerts_sent,
                 profiled))
            (run_id,) = cur.fetchone()
        return dataclasses.replace(run, id=int(run_id))

    def list_monitor_runs(self, project: str, monitor: str | None = None, *,
                          since: datetime | None = None, limit: int = 100) -> list[MonitorRun]:
        """The latest ``limit`` runs of ``project`` (of one monitor, or of all), newest
        ``started_at`` first (ties: the later recorded first); with ``since``, only runs
        that started at or after it. Raises ValueError when ``limit`` is below 1."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"list_monitor_runs: limit must be a positive integer, "
                             f"not {limit!r}")
        where, params = "WHERE project = ?", [project]
        if monitor is not None:
            where, params = where + " AND monitor = ?", [*params, monitor]
        if since is not None:
            where, params = where + " AND started_at >= ?", [
                *params, self._time_param(_utc(since))]
        with self._read() as cur:
            cur.execute(self._sql(f"SELECT {_COLUMNS} FROM {{p}}hw_monitor_runs {where} "
                                  "ORDER BY started_at DESC, id DESC LIMIT ?"),
                        (*params, limit))
            return [_run(row) for row in cur.fetchall()]

    def _optional_param(self, value: datetime | None) -> Any:
        return None if value is None else self._time_param(value)


def monitor_tables(backend: object) -> MonitorTables:
    """``backend`` (a registry's ``backend``) as :class:`MonitorTables`, for callers that
    hold it as the :class:`~headwater.registry.base.RegistryBackend` protocol, which does
    not list these methods; RegistryError for a backend without them."""
    if not isinstance(backend, MonitorTables):
        raise RegistryError(f"the registry backend {type(backend).__name__} has no monitor "
                            "tables. Fix: use the SQLite or PostgreSQL registry")
    return backend


def _validate(run: MonitorRun) -> None:
    where = f"monitor run of '{run.monitor}' (project '{run.project}')"
    if run.status not in MONITOR_STATUSES:
        raise ValueError(f"{where}: status must be one of {list(MONITOR_STATUSES)}, "
                         f"not {run.status!r}")
    failed = len(run.failed)
    if run.status == "ok" and failed:
        raise ValueError(f"{where}: status 'ok' but {failed} finding(s) failed; record it "
                         "as 'alert'")
    if run.status == "alert" and not failed:
        raise ValueError(f"{where}: status 'alert' but no finding failed; record it as 'ok'")
    if run.status == "error" and not run.error:
        raise ValueError(f"{where}: status 'error' needs the error text (error=...)")
    if run.finished_at < run.started_at:
        raise ValueError(f"{where}: finished_at {run.finished_at.isoformat()} is before "
                         f"started_at {run.started_at.isoformat()}")
    if (run.window_start is not None and run.window_end is not None
            and run.window_end < run.window_start):
        raise ValueError(f"{where}: window_end {run.window_end.isoformat()} is before "
                         f"window_start {run.window_start.isoformat()}")
    if isinstance(run.alerts_sent, bool) or not isinstance(run.alerts_sent, int) \
            or run.alerts_sent < 0:
        raise ValueError(f"{where}: alerts_sent must be a count (an integer >= 0), "
                         f"not {run.alerts_sent!r}")


def _dumps(run: MonitorRun) -> str:
    """The findings as JSON text; numpy scalars in ``details`` become Python numbers."""
    try:
        return json.dumps([f.to_dict() for f in run.findings], default=_scalar)
    except (TypeError, ValueError) as exc:
        raise RegistryError(
            f"monitor run of '{run.monitor}' (project '{run.project}'): a finding holds a "
            f"value JSON cannot store: {exc}. Fix: keep Finding.details to JSON scalars, "
            "lists and dicts") from exc


def _scalar(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return item()  # a numpy scalar
    raise TypeError(f"{value!r} of type {type(value).__name__} is not JSON")


def _run(row: Sequence[Any]) -> MonitorRun:
    profiles = json.loads(row[11] or "{}")
    if profiles:
        from headwater.monitoring.profile import Profile

        profiles = {k: Profile.from_dict(v) for k, v in profiles.items()}
    return MonitorRun(
        id=int(row[0]), project=row[1], monitor=row[2], started_at=stored_time(row[3]),
        finished_at=stored_time(row[4]), window_start=optional_stored_time(row[5]),
        window_end=optional_stored_time(row[6]), status=row[7],
        findings=tuple(Finding.from_dict(f) for f in json.loads(row[8])), error=row[9],
        alerts_sent=int(row[10]),
        profiles=profiles)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _optional_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


__all__ = ["MONITOR_STATUSES", "POSTGRES_DDL", "SQLITE_DDL", "MonitorRun", "MonitorTables",
           "monitor_tables"]
