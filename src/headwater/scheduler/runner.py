"""The scheduler loop: find the due work of the registered jobs, claim it, run it, record it.

Each pass (:meth:`Scheduler.run_due`) reads the enabled jobs (``store.list_jobs()``) and
each job's latest run from the registry, and decides what is due now:

* a ``retrying`` attempt whose ``retry_at`` has come: attempt ``n + 1`` of the same slot
  (the wait after attempt ``n`` fails is ``retry_backoff * 2 ** (n - 1)``);
* a ``running`` attempt whose lease expired (its scheduler died): the next attempt of the
  same slot, or, when none is left, the run is closed as failed;
* otherwise the job's next slot: the latest time its cron schedule matched after its last
  claimed slot (or, for a job never run, at or after the minute the scheduler started) and
  not after now. Slots missed while no scheduler ran are NOT run one by one: only the
  latest one is (catching up on 200 missed 5-minute materializations would redo the same
  work 200 times; the latest one's end covers them). A slot is not started while the
  job's previous slot is still running or waiting for a retry: runs of one job never
  overlap.

The claim (:meth:`~headwater.registry.job_tables.JobTables.claim_run`) is an insert in the
registry database that only one scheduler can make, so any number of schedulers can share a
registry and each slot runs once. While a run lasts its owner renews its lease from a
background thread every third of the lease.

Every attempt is recorded with its status, duration, rows and error; a failed attempt that
has retries left is logged at WARNING, the last one at ERROR with the job's name and error.
The clock is injectable (``now``) so tests drive the loop through time without sleeping.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from headwater.errors import HeadwaterError
from headwater.scheduler.actions import run_action
from headwater.scheduler.base import FAILED, RETRYING, RUNNING, SUCCEEDED, JobRun
from headwater.scheduler.cron import CronSchedule, parse_cron

if TYPE_CHECKING:
    from headwater.definitions.job import Job
    from headwater.registry.sql import SQLRegistryBackend
    from headwater.store import FeatureStore

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=2)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current UTC time (the default clock)."""
    return datetime.now(UTC)


def default_owner() -> str:
    """A name for this scheduler process that is unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Due:
    """Work found due: ``attempt`` of ``job`` at ``scheduled_for``; ``stale`` is the run
    whose expired lease it takes over (None for a fresh slot or a retry)."""

    job: Job
    scheduled_for: datetime
    attempt: int
    stale: JobRun | None = None


class Scheduler:
    """Runs the registered jobs of ``store``'s project on their schedules.

    ``owner`` names this scheduler in the run records (default: host, pid and a random
    suffix). ``now`` is the clock; ``since`` the start time for jobs never run (default:
    the minute the scheduler was made). ``on_run`` is called with each finished run."""

    def __init__(self, store: FeatureStore, *, owner: str | None = None,
                 now: Clock = utc_now, since: datetime | None = None,
                 lease: timedelta = DEFAULT_LEASE,
                 on_run: Callable[[JobRun], None] | None = None) -> None:
        if lease <= timedelta(0):
            raise ValueError(f"the lease must be positive, not {lease}")
        self.store = store
        self.owner = owner or default_owner()
        self.lease = lease
        self._now = now
        self._on_run = on_run
        self.since = _minute(since if since is not None else now())
        self._schedules: dict[str, CronSchedule] = {}

    @property
    def backend(self) -> SQLRegistryBackend:
        from headwater.registry.sql import SQLRegistryBackend

        backend = self.store.registry.backend
        if not isinstance(backend, SQLRegistryBackend):  # every shipped backend is SQL
            raise TypeError(f"the scheduler needs a SQL registry, not {type(backend).__name__}")
        return backend

    def now(self) -> datetime:
        """The scheduler clock, in UTC."""
        moment = self._now()
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)

    # -- deciding ---------------------------------------------------------------------

    def due(self) -> tuple[list[Due], datetime | None]:
        """The work due now, and the earliest later time something becomes due (None if
        nothing is scheduled). Lease expiries without an attempt left are closed here."""
        now = self.now()
        last = self.backend.last_runs(self.store.project)
        due: list[Due] = []
        wake: list[datetime] = []
        for job in sorted(self.store.list_jobs(), key=lambda j: j.name):
            if not job.enabled:
                continue
            found, later = self._due_one(job, last.get(job.name), now)
            if found is not None:
                due.append(found)
            if later is not None:
                wake.append(later)
        return due, min(wake, default=None)

    def _due_one(self, job: Job, run: JobRun | None,
                 now: datetime) -> tuple[Due | None, datetime | None]:
        if run is not None and run.status == RETRYING:
            if run.retry_at is not None and run.retry_at > now:
                return None, run.retry_at
            return Due(job, run.scheduled_for, run.attempt + 1), None
        if run is not None and run.status == RUNNING:
            if run.lease_until >= now:
                return None, run.lease_until + timedelta(microseconds=1)
            if run.attempt <= job.retries:
                return Due(job, run.scheduled_for, run.attempt + 1, stale=run), None
            if self.backend.expire_run(self.store.project, run, now=now):
                log.error("job %s failed at %s after %d attempt(s): its scheduler '%s' stopped "
                          "renewing the lease", job.name, run.scheduled_for.isoformat(),
                          run.attempt, run.owner)
            return None, now  # look again: the next slot is due from now on
        base = run.scheduled_for if run is not None else self.since - timedelta(minutes=1)
        schedule = self._schedule(job)
        slot = latest_slot(schedule, base, now)
        if slot is None:
            return None, schedule.next_after(max(base, now))
        return Due(job, slot, 1), None

    def _schedule(self, job: Job) -> CronSchedule:
        if job.schedule not in self._schedules:
            self._schedules[job.schedule] = parse_cron(job.schedule)
        return self._schedules[job.schedule]

    # -- running ----------------------------------------------------------------------

    def run_due(self, stop: threading.Event | None = None) -> list[JobRun]:
        """One pass: claim and run everything due now, one job after another (stopping
        early once ``stop`` is set). Returns the runs this scheduler finished."""
        finished = []
        for item in self.due()[0]:
            if stop is not None and stop.is_set():
                break
            run = self.run_one(item)
            if run is not None:
                finished.append(run)
        return finished

    def run_one(self, item: Due) -> JobRun | None:
        """Claim ``item`` and run it; None when another scheduler has it."""
        now = self.now()
        project = self.store.project
        claimed = self.backend.claim_run(
            project, item.job.name, item.scheduled_for, item.attempt, owner=self.owner,
            now=now, lease_until=now + self.lease, stale=item.stale)
        if claimed is None:
            return None
        started = time.perf_counter()
        with _Heartbeat(self, claimed):
            try:
                result = run_action(self.store, item.job, claimed.scheduled_for)
            except Exception as exc:  # noqa: BLE001  the job boundary: recorded, retried, logged
                outcome = self._failed(item.job, claimed, exc, time.perf_counter() - started)
            else:
                outcome = self._finish(claimed, SUCCEEDED, time.perf_counter() - started,
                                       rows=result.rows, detail=result.detail)
        if self._on_run is not None:
            self._on_run(outcome)
        return outcome

    def _failed(self, job: Job, run: JobRun, exc: Exception, seconds: float) -> JobRun:
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        if run.attempt <= job.retries:
            retry_at = self.now() + retry_wait(job, run.attempt)
            log.warning("job %s at %s failed (attempt %d of %d), retrying at %s: %s",
                        job.name, run.scheduled_for.isoformat(), run.attempt,
                        job.retries + 1, retry_at.isoformat(), error)
            return self._finish(run, RETRYING, seconds, error=error, retry_at=retry_at)
        log.error("job %s at %s failed after %d attempt(s): %s", job.name,
                  run.scheduled_for.isoformat(), run.attempt, error)
        return self._finish(run, FAILED, seconds, error=error)

    def _finish(self, run: JobRun, status: str, seconds: float, *, rows: int | None = None,
                detail: str | None = None, error: str | None = None,
                retry_at: datetime | None = None) -> JobRun:
        now = self.now()
        kept = self.backend.finish_run(
            run.project, run.id, owner=self.owner, status=status, now=now, duration_s=seconds,
            rows=rows, error=error, detail=detail, retry_at=retry_at)
        if not kept:
            log.warning("job %s at %s finished (%s) after another scheduler took it over "
                        "(its lease expired); that outcome is not recorded", run.job,
                        run.scheduled_for.isoformat(), status)
        return JobRun(run.id, run.project, run.job, run.scheduled_for, run.attempt, run.owner,
                      status, run.started_at, run.lease_until, now, seconds, rows, error,
                      detail, retry_at)

    def run_forever(self, stop: threading.Event, *, until: datetime | None = None,
                    poll_seconds: float = 30.0) -> None:
        """Run passes until ``stop`` is set (the job in progress finishes first) or the
        clock passes ``until``. Between passes it waits until the next due time, at most
        ``poll_seconds`` (new or changed jobs are seen at the next pass)."""
        while not stop.is_set() and (until is None or self.now() < until):
            self.run_due(stop)
            _, wake = self.due()
            now = self.now()
            limit = until if until is not None else now + timedelta(seconds=poll_seconds)
            target = min(wake, limit) if wake is not None else limit
            wait = min((target - now).total_seconds(), poll_seconds)
            if wait > 0:
                stop.wait(wait)


def latest_slot(schedule: CronSchedule, after: datetime, now: datetime) -> datetime | None:
    """The latest time in ``(after, now]`` that ``schedule`` matches, or None.

    Searches growing windows back from ``now`` so a long outage costs a few steps, not one
    per missed slot."""
    first = schedule.next_after(after)
    if first > now:
        return None
    for window in (timedelta(hours=1), timedelta(days=2), timedelta(days=62),
                   timedelta(days=800), None):
        start = after if window is None else max(after, now - window)
        found, candidate = None, schedule.next_after(start)
        while candidate <= now:
            found, candidate = candidate, schedule.next_after(candidate)
        if found is not None:
            return found
    return first  # unreachable: the unbounded window holds ``first``


def _minute(moment: datetime) -> datetime:
    value = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return value.replace(second=0, microsecond=0)


class _Heartbeat:
    """Renews a run's lease every third of the lease while the run lasts (real time: a
    slow job must keep its claim whatever the scheduler clock says)."""

    def __init__(self, scheduler: Scheduler, run: JobRun) -> None:
        self._scheduler = scheduler
        self._run = run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"headwater-lease-{run.job}")

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        scheduler, run = self._scheduler, self._run
        interval = scheduler.lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                held = scheduler.backend.heartbeat(
                    run.project, run.id, owner=scheduler.owner,
                    lease_until=scheduler.now() + scheduler.lease)
            except HeadwaterError as exc:  # the registry is down: try again next beat
                log.warning("job %s: cannot renew the lease: %s", run.job, exc)
                continue
            if not held:
                log.warning("job %s at %s: another scheduler took the run over (the lease "
                            "expired before it was renewed)", run.job,
                            run.scheduled_for.isoformat())
                return


MAX_RETRY_WAIT = timedelta(hours=6)
"""The longest wait before a retry, however many attempts failed."""


def retry_wait(job: Job, attempt: int) -> timedelta:
    """The wait after failed ``attempt`` (from 1): ``retry_backoff`` doubled per attempt,
    at most :data:`MAX_RETRY_WAIT`."""
    if job.retry_backoff <= timedelta(0):
        return timedelta(0)
    doublings = min(attempt - 1, 62)  # 2**62 backoffs exceed the cap long before
    wait = job.retry_backoff.total_seconds() * 2.0 ** doublings
    return min(timedelta(seconds=wait), MAX_RETRY_WAIT) if wait < 1e12 else MAX_RETRY_WAIT
