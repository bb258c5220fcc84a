"""The scheduler's table, in the same database as the catalog.

- ``hw_job_runs``  one row per attempt of a job at a scheduled time (a UTC minute), unique
  on ``(project, job, scheduled_for, attempt)``; see :mod:`headwater.scheduler.base` for
  the statuses.

The row is the lock: a scheduler inserts it (:meth:`JobTables.claim_run`) before running,
in the project's exclusive write transaction, and runs only if the insert happened. A second
scheduler's insert of the same slot finds the row and gets None, so two schedulers never run
the same attempt. A claim of a new slot must also be later than every slot already claimed
for the job, so a scheduler with a stale view never runs an older slot after a newer one.
The owner renews ``lease_until`` while the run lasts (:meth:`JobTables.heartbeat`); once
it has passed, another scheduler may close the run and claim the next attempt in the same
transaction.

:class:`JobTables` is mixed into :class:`~headwater.registry.sql.SQLRegistryBackend`, so
SQLite and PostgreSQL share these statements; the DDL differs only in types. Every write
goes through ``_exclusive`` (``BEGIN IMMEDIATE`` in SQLite, the project's advisory lock in
PostgreSQL), so a claim, a heartbeat and a take-over never interleave.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from headwater.registry.tables import SQLHost, optional_stored_time, stored_time
from headwater.scheduler.base import FAILED, RETRYING, RUNNING, STATUSES, JobRun

_COLUMNS = ("id, project, job, scheduled_for, attempt, owner, status, started_at, lease_until, "
            "finished_at, duration_s, rows, error, detail, retry_at")

SQLITE_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS hw_job_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, job TEXT NOT NULL,
    scheduled_for TEXT NOT NULL, attempt INTEGER NOT NULL, owner TEXT NOT NULL,
    status TEXT NOT NULL, started_at TEXT NOT NULL, lease_until TEXT NOT NULL,
    finished_at TEXT, duration_s REAL, rows INTEGER, error TEXT, detail TEXT, retry_at TEXT,
    UNIQUE (project, job, scheduled_for, attempt))""",
)
POSTGRES_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS {p}hw_job_runs (
    id BIGSERIAL PRIMARY KEY, project TEXT NOT NULL, job TEXT NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL, attempt INTEGER NOT NULL, owner TEXT NOT NULL,
    status TEXT NOT NULL, started_at TIMESTAMPTZ NOT NULL, lease_until TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ, duration_s DOUBLE PRECISION, rows BIGINT, error TEXT,
    detail TEXT, retry_at TIMESTAMPTZ,
    UNIQUE (project, job, scheduled_for, attempt))""",
)


class JobTables(SQLHost):
    """Scheduler storage methods: run records and the claim that keeps two schedulers
    from running the same job twice (see the module docstring).

    Relies on the host class's ``_sql``, ``_exclusive``, ``_read`` and ``_time_param``
    (:class:`~headwater.registry.sql.SQLRegistryBackend`)."""

    def claim_run(self, project: str, job: str, scheduled_for: datetime, attempt: int, *,
                  owner: str, now: datetime, lease_until: datetime,
                  stale: JobRun | None = None) -> JobRun | None:
        """Insert the ``running`` row of ``attempt`` of ``job`` at ``scheduled_for`` and
        return it, or None when it may not run here: the row exists (another scheduler has
        it), or it is attempt 1 of a slot not later than the job's latest claimed slot.

        ``stale``, a ``running`` run whose lease has expired, is first closed as
        ``retrying`` with a "lease expired" error; None (nothing claimed) if it is no
        longer running with that lease (it finished, renewed, or was taken over)."""
        slot = _minute(scheduled_for)
        with self._exclusive(project) as cur:
            if stale is not None and not self._expire(cur, stale, RETRYING, now):
                return None
            if attempt == 1:
                cur.execute(self._sql("SELECT MAX(scheduled_for) FROM {p}hw_job_runs "
                                      "WHERE project = ? AND job = ?"), (project, job))
                row = cur.fetchone()
                if row and row[0] is not None and stored_time(row[0]) >= slot:
                    return None
            cur.execute(self._sql(
                "INSERT INTO {p}hw_job_runs (project, job, scheduled_for, attempt, owner, "
                "status, started_at, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                f"ON CONFLICT DO NOTHING RETURNING {_COLUMNS}"),
                (project, job, self._time_param(slot), attempt, owner, RUNNING,
                 self._time_param(now), self._time_param(lease_until)))
            inserted = cur.fetchone()
            return _run(inserted) if inserted else None

    def heartbeat(self, project: str, run_id: int, *, owner: str,
                  lease_until: datetime) -> bool:
        """Extend the lease of a run ``owner`` still holds; False if it lost it (the run was
        taken over after its lease expired)."""
        with self._exclusive(project) as cur:
            cur.execute(self._sql(
                "UPDATE {p}hw_job_runs SET lease_until = ? "
                "WHERE id = ? AND owner = ? AND status = ?"),
                (self._time_param(lease_until), run_id, owner, RUNNING))
            return bool(cur.rowcount)

    def finish_run(self, project: str, run_id: int, *, owner: str, status: str,
                   now: datetime, duration_s: float, rows: int | None = None,
                   error: str | None = None, detail: str | None = None,
                   retry_at: datetime | None = None) -> bool:
        """Record how a run ``owner`` holds ended; False (nothing written) if it lost the
        run meanwhile. ``retry_at`` goes with ``status='retrying'``."""
        if status not in STATUSES or status == RUNNING:
            raise ValueError(f"a finished run's status is one of {list(STATUSES[1:])}, "
                             f"not {status!r}")
        with self._exclusive(project) as cur:
            cur.execute(self._sql(
                "UPDATE {p}hw_job_runs SET status = ?, finished_at = ?, duration_s = ?, "
                "rows = ?, error = ?, detail = ?, retry_at = ? "
                "WHERE id = ? AND owner = ? AND status = ?"),
                (status, self._time_param(now), duration_s, rows, error, detail,
                 None if retry_at is None else self._time_param(retry_at), run_id, owner,
                 RUNNING))
            return bool(cur.rowcount)

    def expire_run(self, project: str, stale: JobRun, *, now: datetime) -> bool:
        """Close ``stale`` (running, lease expired, no attempt left) as ``failed`` with a
        "lease expired" error; False if it is no longer running with that lease."""
        with self._exclusive(project) as cur:
            return self._expire(cur, stale, FAILED, now)

    def _expire(self, cur: Any, stale: JobRun, status: str, now: datetime) -> bool:
        cur.execute(self._sql(f"SELECT {_COLUMNS} FROM {{p}}hw_job_runs WHERE id = ?"),
                    (stale.id,))
        row = cur.fetchone()
        current = _run(row) if row else None
        if (current is None or current.status != RUNNING
                or current.lease_until != stale.lease_until or current.lease_until >= now):
            return False
        error = (f"lease expired: scheduler '{current.owner}' stopped renewing its lease at "
                 f"{current.lease_until.isoformat()} (it crashed or was stopped mid-run)")
        cur.execute(self._sql(
            "UPDATE {p}hw_job_runs SET status = ?, finished_at = ?, error = ?, retry_at = ? "
            "WHERE id = ?"),
            (status, self._time_param(now), error,
             self._time_param(now) if status == RETRYING else None, stale.id))
        return True

    def runs(self, project: str, job: str | None = None, limit: int = 100) -> list[JobRun]:
        """The latest ``limit`` runs (every attempt), newest first; of one job or all."""
        where, params = "WHERE project = ?", [project]
        if job is not None:
            where, params = where + " AND job = ?", [project, job]
        with self._read() as cur:
            cur.execute(self._sql(f"SELECT {_COLUMNS} FROM {{p}}hw_job_runs {where} "
                                  "ORDER BY scheduled_for DESC, attempt DESC, id DESC "
                                  "LIMIT ?"), (*params, int(limit)))
            return [_run(row) for row in cur.fetchall()]

    def last_runs(self, project: str) -> dict[str, JobRun]:
        """job -> its latest attempt of its latest claimed slot."""
        with self._read() as cur:
            cur.execute(self._sql(
                f"SELECT {_COLUMNS} FROM {{p}}hw_job_runs r WHERE project = ? AND id = ("
                "SELECT id FROM {p}hw_job_runs l WHERE l.project = r.project AND l.job = r.job "
                "ORDER BY scheduled_for DESC, attempt DESC LIMIT 1)"), (project,))
            return {run.job: run for run in map(_run, cur.fetchall())}


def _minute(moment: datetime) -> datetime:
    value = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return value.replace(second=0, microsecond=0)


def _run(row: Sequence[Any]) -> JobRun:
    return JobRun(
        id=int(row[0]), project=row[1], job=row[2], scheduled_for=stored_time(row[3]),
        attempt=int(row[4]), owner=row[5], status=row[6], started_at=stored_time(row[7]),
        lease_until=stored_time(row[8]), finished_at=optional_stored_time(row[9]),
        duration_s=None if row[10] is None else float(row[10]),
        rows=None if row[11] is None else int(row[11]), error=row[12], detail=row[13],
        retry_at=optional_stored_time(row[14]))
