"""The scheduler's records: one :class:`JobRun` per attempt at one scheduled time of a job.

A run's ``status`` is one of:

* ``running``    claimed and being run; its owner renews ``lease_until`` while it runs;
* ``succeeded``  done (``rows`` says how much it did, ``detail`` what);
* ``retrying``   this attempt failed (``error``) and attempt ``attempt + 1`` of the same
  scheduled time may be claimed from ``retry_at`` on, by any scheduler;
* ``failed``     this attempt failed and it was the last one (``retries`` exhausted).

An owner that stops renewing its lease (a crashed scheduler) loses the run: another
scheduler closes it as ``retrying`` (or ``failed`` when no attempt is left) with a
"lease expired" error and claims the next attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

RUNNING = "running"
SUCCEEDED = "succeeded"
RETRYING = "retrying"
FAILED = "failed"
STATUSES = (RUNNING, SUCCEEDED, RETRYING, FAILED)


@dataclass(frozen=True)
class JobRun:
    """One attempt of ``job`` at ``scheduled_for`` (a UTC minute), as recorded in the
    registry table ``hw_job_runs``. ``duration_s``, ``rows`` and ``finished_at`` are None
    while it runs; ``error`` is set for failed attempts; ``detail`` says what a finished run
    did (e.g. the version trained and whether it was promoted)."""

    id: int
    project: str
    job: str
    scheduled_for: datetime
    attempt: int
    owner: str
    status: str
    started_at: datetime
    lease_until: datetime
    finished_at: datetime | None = None
    duration_s: float | None = None
    rows: int | None = None
    error: str | None = None
    detail: str | None = None
    retry_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """Whether this attempt is over (any status but ``running``)."""
        return self.status != RUNNING
