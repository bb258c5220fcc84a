"""The jobs page: the registered scheduled jobs and the scheduler's runs of them.

Without a query the page lists every registered :class:`~headwater.definitions.job.Job`:
its cron schedule (UTC), action and target, when it runs next and how its latest run went
(the latest attempt of its latest scheduled time, as ``headwater jobs`` shows), then the
latest :data:`RECENT_RUNS` runs of all jobs. ``?job=NAME`` shows one job's definition and
its latest :data:`RUNS_SHOWN` runs. Every attempt is a run: its scheduled time, attempt
number, status (``running``, ``succeeded``, ``retrying``, ``failed``), duration, rows,
and the error of a failed attempt or what a finished one did.

"Next" is the first time the schedule matches after now, as ``headwater jobs`` computes
it; a job whose latest attempt waits for a retry shows the retry's time instead, one whose
attempt is running says so, and a disabled job says it is disabled. A name that is neither
registered nor has runs is a NotFoundError; the runs of a job deleted since stay listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from headwater.definitions import Job
from headwater.errors import RegistryError
from headwater.scheduler.base import FAILED, RETRYING, RUNNING, SUCCEEDED, JobRun
from headwater.ui.html import badge, duration, esc, link, table, when

if TYPE_CHECKING:
    from headwater.registry.job_tables import JobTables
    from headwater.store import FeatureStore

PAGE = "/jobs"
RUNS_SHOWN = 50
"""Runs of one job listed (newest first)."""
RECENT_RUNS = 30
"""Runs of all jobs listed on the overview."""
STATUS_KIND = {SUCCEEDED: "ok", FAILED: "bad", RETRYING: "warn", RUNNING: ""}


def render(store: FeatureStore, query: Mapping[str, str]) -> str:
    """The page's body: every job and the latest runs, or the one ``query["job"]``
    names."""
    name = query.get("job")
    if name:
        return _detail(store, name, datetime.now(UTC))
    return _overview(store, datetime.now(UTC))


def status(text: str) -> str:
    """A run status as a coloured badge."""
    return badge(text, STATUS_KIND.get(text, ""))


def next_run(job: Job, last: JobRun | None, now: datetime) -> str:
    """When ``job`` runs next, as the page says it (module docstring), escaped."""
    from headwater.scheduler.cron import parse_cron

    if not job.enabled:
        return "disabled"
    if last is not None and last.status == RETRYING and last.retry_at is not None:
        return f"retry at {when(last.retry_at)}"
    if last is not None and last.status == RUNNING:
        return "running now"
    return when(parse_cron(job.schedule).next_after(now))


def _backend(store: FeatureStore) -> JobTables:
    from headwater.registry.job_tables import JobTables

    backend = store.registry.backend
    if not isinstance(backend, JobTables):
        raise RegistryError(f"the registry backend {type(backend).__name__} keeps no job "
                            "runs. Fix: use the SQLite or PostgreSQL registry")
    return backend


def _overview(store: FeatureStore, now: datetime) -> str:
    backend = _backend(store)
    jobs = sorted(store.list_jobs(), key=lambda j: j.name)
    last = backend.last_runs(store.project)
    rows = []
    for job in jobs:
        latest = last.get(job.name)
        rows.append([
            link(PAGE, job.name, job=job.name), f"<code>{esc(job.schedule)}</code>",
            esc(job.action), _target(job), next_run(job, latest, now),
            "—" if latest is None else when(latest.scheduled_for),
            "—" if latest is None else status(latest.status),
            "—" if latest is None else duration(latest.duration_s),
            esc(job.description)])
    listing = table(["job", "schedule (UTC)", "action", "target", "next", "last run",
                     "status", "duration", "description"], rows,
                    empty="no job is registered: define an hw.Job in the repo")
    names = {job.name for job in jobs}
    recent = backend.runs(store.project, None, RECENT_RUNS)
    return listing + "<h2>Latest runs</h2>" + _runs(recent, names, with_job=True)


def _detail(store: FeatureStore, name: str, now: datetime) -> str:
    backend = _backend(store)
    runs = backend.runs(store.project, name, RUNS_SHOWN)
    if not runs:
        store.registry.typed(Job, name)  # NotFoundError with the known names
    job = next((j for j in store.list_jobs() if j.name == name), None)
    parts = [f'<p>{link(PAGE, "All jobs")}</p>', f"<h2>Job {esc(name)}</h2>"]
    if job is None:
        parts.append('<p class="muted">This job is no longer registered; its runs '
                     "are.</p>")
    else:
        if job.description:
            parts.append(f"<p>{esc(job.description)}</p>")
        parts.append(_definition(job, runs[0] if runs else None, now))
    parts += [f"<h3>Runs ({esc(len(runs))} newest)</h3>",
              _runs(runs, set() if job is None else {name}, with_job=False)]
    return "".join(parts)


def _definition(job: Job, latest: JobRun | None, now: datetime) -> str:
    options = ", ".join(f"{k}={v}" for k, v in sorted(job.options.items()))
    rows = [("schedule (UTC)", f"<code>{esc(job.schedule)}</code>"),
            ("action", esc(job.action)), ("target", _target(job)),
            ("options", esc(options or "—")),
            ("retries", esc(f"{job.retries}, first after {duration(job.retry_backoff)}, "
                            "doubling")),
            ("enabled", "yes" if job.enabled else "no"),
            ("next", next_run(job, latest, now)),
            ("owner", esc(job.owner or "—")),
            ("tags", esc(", ".join(f"{k}={v}" for k, v in sorted(job.tags.items())) or "—"))]
    return table(["field", "value"], [[esc(k), v] for k, v in rows])


def _runs(runs: Sequence[JobRun], registered: set[str], *, with_job: bool) -> str:
    rows = []
    for run in runs:
        cells = [when(run.scheduled_for), esc(run.attempt), status(run.status),
                 duration(run.duration_s), "—" if run.rows is None else esc(f"{run.rows:,}"),
                 when(run.started_at), when(run.finished_at), esc(run.owner),
                 esc(run.error or run.detail or "")]
        if with_job:
            name = (link(PAGE, run.job, job=run.job) if run.job in registered
                    else esc(run.job) + ' <span class="muted">(deleted)</span>')
            cells.insert(1, name)
        rows.append(cells)
    headers = ["scheduled for", "attempt", "status", "duration", "rows", "started",
               "finished", "scheduler", "error or detail"]
    if with_job:
        headers.insert(1, "job")
    return table(headers, rows, empty="the scheduler has not run a job yet")


def _target(job: Job) -> str:
    """The job's target, linked to the page of the model or monitor it runs."""
    if not job.target:
        return '<span class="muted">all online views</span>' if (
            job.action == "materialize_incremental") else "—"
    if job.action == "monitor":
        return link("/monitoring", job.target, monitor=job.target)
    if job.action == "train":
        return link("/models", job.target, model=job.target)
    if job.action == "predict":
        model = job.target.split("@")[0].split(":")[0]
        return esc(job.target) + " (" + link("/models", "model", model=model) + ")"
    return esc(job.target)
