"""``headwater scheduler``: run the repo's scheduled jobs, one line per run."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from headwater.cli.commands import repo_option
from headwater.cli.materialize import TIME
from headwater.cli.render import console

if TYPE_CHECKING:
    from headwater.scheduler.base import JobRun

_STYLE = {"succeeded": "green", "retrying": "yellow", "failed": "red"}


@click.command()
@repo_option
@click.option("--once", is_flag=True,
              help="Run what is due now (one pass), then exit; exit code 1 if a run failed.")
@click.option("--until", type=TIME, default=None,
              help="Stop once the clock passes this ISO-8601 time (naive times are UTC).")
@click.option("--poll-seconds", type=click.FloatRange(min=0.1), default=30.0,
              show_default=True,
              help="Longest wait between passes (new or changed jobs are seen at a pass).")
@click.option("--owner", default=None,
              help="This scheduler's name in the run records (default: host:pid:random).")
def scheduler(repo: Path, once: bool, until: datetime | None, poll_seconds: float,
              owner: str | None) -> None:
    """Run the jobs declared in the repo (hw.Job) on their cron schedules (UTC).

    Each run is claimed in the registry database first, so any number of schedulers can
    share a registry and each scheduled time runs once. Runs are recorded (status,
    duration, rows, error): a failed run is retried `retries` times with a doubling
    backoff, and the last failure is logged as an error. A job never run starts at its
    first scheduled time from now; after downtime only the latest missed time runs. Runs
    until Ctrl+C or SIGTERM (the job in progress finishes first), or --until / --once.
    """
    from headwater.scheduler.runner import Scheduler
    from headwater.store import FeatureStore

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    failed = 0
    try:
        with FeatureStore(repo) as store:
            runner = Scheduler(store, owner=owner, on_run=_print_run)
            jobs = [job for job in store.list_jobs() if job.enabled]
            click.echo(f"scheduling {len(jobs)} enabled job(s) of project '{store.project}' "
                       f"as '{runner.owner}'"
                       + ("" if once else ". Press Ctrl+C to stop."), err=True)
            if once:
                failed = sum(run.status != "succeeded" for run in runner.run_due(stop))
            else:
                end = None if until is None else (
                    until.replace(tzinfo=UTC) if until.tzinfo is None else until)
                runner.run_forever(stop, until=end, poll_seconds=poll_seconds)
                click.echo("scheduler stopped", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise click.exceptions.Exit(1)


def _print_run(run: JobRun) -> None:
    from rich.markup import escape

    style = _STYLE.get(run.status, "default")
    seconds = f"{run.duration_s:.2f}s" if run.duration_s is not None else "-"
    rows = f"{run.rows:,} rows" if run.rows is not None else "-"
    line = (f"[{style}]{run.status:<9}[/] [bold]{escape(run.job)}[/] "
            f"{run.scheduled_for:%Y-%m-%d %H:%M} attempt {run.attempt} {seconds} {rows}")
    if run.detail:
        line += f"  {escape(run.detail)}"
    if run.error:
        line += f"  [{style}]{escape(run.error)}[/]"
    if run.retry_at is not None:
        line += f"  (retry at {run.retry_at:%Y-%m-%d %H:%M:%S})"
    console().print(line)


@click.command()
@click.argument("job", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Runs shown (with JOB).")
@repo_option
def jobs(job: str | None, limit: int, repo: Path) -> None:
    """The repo's scheduled jobs with their next time and last run; with JOB, that job's
    latest runs (every attempt: status, duration, rows, error)."""
    from rich.markup import escape
    from rich.table import Table

    from headwater.registry.job_tables import JobTables
    from headwater.scheduler.cron import parse_cron
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        backend = store.registry.backend
        if not isinstance(backend, JobTables):
            raise click.ClickException("this registry keeps no job runs")
        out = console()
        if job is not None:
            table = Table(title=f"Runs of {job}", title_justify="left")
            for column in ("scheduled for", "attempt", "status", "seconds", "rows"):
                table.add_column(column, no_wrap=True)
            table.add_column("error or detail")
            for run in backend.runs(store.project, job, limit):
                table.add_row(f"{run.scheduled_for:%Y-%m-%d %H:%M}", str(run.attempt),
                              f"[{_STYLE.get(run.status, 'default')}]{run.status}[/]",
                              "-" if run.duration_s is None else f"{run.duration_s:.2f}",
                              "-" if run.rows is None else f"{run.rows:,}",
                              escape(run.error or run.detail or ""))
            out.print(table)
            return
        last = backend.last_runs(store.project)
        now = datetime.now(UTC)
        table = Table(title="Jobs", title_justify="left")
        for column in ("job", "schedule (UTC)", "action", "next", "last run", "status"):
            table.add_column(column, overflow="fold")
        for definition in store.list_jobs():
            latest = last.get(definition.name)
            upcoming = parse_cron(definition.schedule).next_after(now)
            table.add_row(definition.name, definition.schedule, definition.action,
                          f"{upcoming:%Y-%m-%d %H:%M}" if definition.enabled else "disabled",
                          "-" if latest is None else f"{latest.scheduled_for:%Y-%m-%d %H:%M}",
                          "-" if latest is None else
                          f"[{_STYLE.get(latest.status, 'default')}]{latest.status}[/]")
        out.print(table)
