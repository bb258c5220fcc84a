"""``materialize`` and ``materialize-incremental``: offline -> online, with a progress bar."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from headwater.cli.commands import repo_option
from headwater.cli.progress import progress_bar
from headwater.cli.render import console

if TYPE_CHECKING:
    from headwater.materialize.job import MaterializeResult

TIME_HELP = "An ISO-8601 time; naive times are UTC (e.g. 2024-01-31 or 2024-01-31T12:00:00)."


class _Time(click.ParamType[datetime]):
    name = "time"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"'{value}' is not an ISO-8601 time such as 2024-01-31T12:00:00", param,
                      ctx)


TIME = _Time()
views_option = click.option("--views", "-v", "views", multiple=True,
                            help="Only these feature views (repeat the option); default: all "
                                 "online views.")


@click.command()
@click.argument("start", type=TIME)
@click.argument("end", type=TIME)
@repo_option
@views_option
def materialize(start: datetime, end: datetime, repo: Path, views: tuple[str, ...]) -> None:
    """Load the latest row per entity with START <= event time <= END into the online store.

    START and END are ISO-8601 times (naive times are UTC). Reruns are idempotent and never
    replace a newer online value; each view's watermark becomes END."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store, progress_bar() as progress:
        _report(store.materialize(start, end, views or None, progress=progress))


@click.command("materialize-incremental")
@click.argument("end", type=TIME)
@repo_option
@views_option
def materialize_incremental(end: datetime, repo: Path, views: tuple[str, ...]) -> None:
    """Materialize each view from its watermark up to END.

    A view never materialized starts at END minus its ttl (or at the beginning without a
    ttl). After an interrupted run, finished views are skipped and the rest start over."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store, progress_bar() as progress:
        _report(store.materialize_incremental(end, views or None, progress=progress))


def _report(results: list[MaterializeResult]) -> None:
    out = console()
    if not results:
        out.print("Nothing to materialize: every view is already past that time.")
    for result in results:
        rate = result.rows / result.seconds if result.seconds > 0 else 0.0
        out.print(f"{result.view}: {result.rows:,} rows from {result.start.isoformat()} to "
                  f"{result.end.isoformat()} in {result.seconds:.2f} s ({rate:,.0f} rows/s)")
