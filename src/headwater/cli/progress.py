"""A live progress bar for long commands (materialize, train, predict)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from headwater.cli.render import console


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s")


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int], None]]:
    """A live bar per step (a view, a training step) with rows and rows/s; yields the
    progress callback ``(name, rows)``."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                  TextColumn("{task.completed:,.0f} rows"), _RowsPerSecond(),
                  TimeElapsedColumn(), console=console()) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(view: str, rows: int) -> None:
            if view not in tasks:
                tasks[view] = bar.add_task(view, total=None)
            bar.advance(tasks[view], rows)

        yield advance
