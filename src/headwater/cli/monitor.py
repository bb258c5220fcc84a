"""``monitor list|run|history|report``: monitors from a shell."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from headwater.cli.commands import repo_option
from headwater.cli.materialize import TIME, TIME_HELP
from headwater.cli.render import console

if TYPE_CHECKING:
    from headwater.registry.monitor_tables import MonitorRun

_STATUS_STYLE = {"ok": "green", "alert": "bold red", "error": "bold magenta"}
EXIT_ALERT = 3
"""``monitor run``'s exit status when a finding failed (1 is an error, 2 a usage error)."""


@click.group()
def monitor() -> None:
    """Monitors: data quality, drift, performance and skew checks, their runs and alerts."""


@monitor.command("list")
@repo_option
def list_monitors(repo: Path) -> None:
    """Every registered monitor with its subject, checks, window and latest run."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        table = Table(title="Monitors", title_justify="left")
        for column in ("monitor", "subject", "checks", "window", "webhooks", "last run"):
            table.add_column(column)
        for item in sorted(store.list_monitors(), key=lambda m: m.name):
            runs = store.monitor_runs(item.name, limit=1)
            last = _status(runs[0]) if runs else "never"
            table.add_row(escape(item.name), escape(item.subject), ", ".join(item.checks),
                          str(item.window), str(len(item.webhooks)), last)
        console().print(table)


@monitor.command()
@click.argument("names", nargs=-1)
@click.option("--end", type=TIME, default=None,
              help=f"The end of the window looked at (default: now). {TIME_HELP}")
@click.option("--no-alerts", is_flag=True,
              help="Store the findings but send no webhook and log no alert.")
@click.option("--json", "as_json", is_flag=True, help="Print each run as JSON.")
@repo_option
def run(names: tuple[str, ...], end: datetime | None, no_alerts: bool, as_json: bool,
        repo: Path) -> None:
    """Run the monitors NAMES (default: every monitor) once, on the window ending at --end.

    Each run's findings are stored in the registry; failed findings are logged and sent to
    the monitor's webhooks. Exits with status 3 when a finding failed (for CI and cron; 1 is
    an error)."""
    from headwater.monitoring.findings import json_safe
    from headwater.store import FeatureStore

    failed = False
    with FeatureStore(repo) as store:
        chosen = list(names) or sorted(m.name for m in store.list_monitors())
        if not chosen:
            raise click.ClickException(
                "no monitor is registered. Fix: define hw.Monitor(...) in the repo and run "
                "headwater apply")
        for name in chosen:  # every name known before any runs
            store.get_monitor(name)
        for name in chosen:
            result = store.run_monitor(name, end=end, alerts=not no_alerts)
            failed = failed or result.status != "ok"
            if as_json:
                click.echo(json.dumps(json_safe(result.to_dict()), allow_nan=False))
            else:
                _print_run(result)
    if failed:
        raise SystemExit(EXIT_ALERT)


@monitor.command()
@click.argument("name")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1),
              help="How many runs, newest first.")
@click.option("--since", type=TIME, default=None, help=f"Only runs started since. {TIME_HELP}")
@repo_option
def history(name: str, limit: int, since: datetime | None, repo: Path) -> None:
    """The stored runs of monitor NAME, newest first: window, status and failed findings."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        table = Table(title=f"Runs of monitor {escape(name)}", title_justify="left")
        for column in ("started", "window", "status", "findings", "failed", "alerts"):
            table.add_column(column, overflow="fold")
        for item in store.monitor_runs(name, since=since, limit=limit):
            failed = [f for f in item.findings if f.failed]
            table.add_row(
                item.started_at.isoformat(timespec="seconds"), _window(item), _status(item),
                str(len(item.findings)),
                escape(", ".join(f"{f.check}:{f.target}" if f.target else f.check
                                 for f in failed)) or "-",
                str(item.alerts_sent))
        console().print(table)


@monitor.command()
@click.argument("name")
@click.option("--out", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("monitoring-reports"), show_default=True,
              help="The folder to write NAME.html and NAME.json into.")
@click.option("--since", type=TIME, default=None, help=f"Only runs started since. {TIME_HELP}")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1),
              help="At most this many runs.")
@repo_option
def report(name: str, folder: Path, since: datetime | None, limit: int, repo: Path) -> None:
    """Write a self-contained HTML report of monitor NAME's runs (statistics, performance
    and drift over time, reference against current histograms) and a JSON of the same."""
    from headwater.monitoring.report_html import write_monitor_report
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        page, data = write_monitor_report(store, name, folder, since=since, limit=limit)
    console().print(f"wrote {escape(str(page))} and {escape(str(data))}")


def _print_run(item: MonitorRun) -> None:
    printer = console()
    printer.print(f"[bold]{escape(item.monitor)}[/] {_window(item)}: {_status(item)}, "
                  f"{len(item.findings)} findings, {item.alerts_sent} alerts sent")
    for finding in item.findings:
        if finding.failed:
            printer.print(f"  [red]FAILED[/] {escape(finding.check)} "
                          f"{escape(finding.target)}: {escape(finding.message)}")


def _status(item: MonitorRun) -> str:
    style = _STATUS_STYLE.get(item.status, "")
    return f"[{style}]{item.status}[/]" if style else item.status


def _window(item: MonitorRun) -> str:
    if item.window_start is None or item.window_end is None:
        return "-"
    return (f"[{item.window_start.isoformat(timespec='minutes')}, "
            f"{item.window_end.isoformat(timespec='minutes')})")
