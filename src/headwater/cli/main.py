"""The ``headwater`` entry point: the command group and the mapping of errors to exit codes."""

from __future__ import annotations

from typing import Any

import click

from headwater.cli.commands import apply, init, list_objects, plan
from headwater.cli.demo import demo
from headwater.cli.keys import keys
from headwater.cli.materialize import materialize, materialize_incremental
from headwater.cli.models import models, train
from headwater.cli.monitor import monitor
from headwater.cli.predict import predict
from headwater.cli.scheduler import jobs, scheduler
from headwater.cli.serve import serve
from headwater.cli.stream import stream
from headwater.cli.ui import ui
from headwater.errors import HeadwaterError

EXIT_ERROR = 1
"""Exit code of a command that failed with a HeadwaterError (click uses 2 for usage errors)."""


class HeadwaterGroup(click.Group):
    """A click group that reports a HeadwaterError as one line instead of a traceback.

    This is the process boundary: every other exception keeps its traceback, since it is
    a bug to report."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HeadwaterError as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            click.secho(f"error: {message}", fg="red", err=True)
            ctx.exit(EXIT_ERROR)


@click.group(cls=HeadwaterGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="headwater", prog_name="headwater")
def cli() -> None:
    """Headwater: an ML platform built around a feature store.

    A repo is a folder with headwater.yaml and Python files that define entities, feature
    views and feature services. Start with `headwater init my_repo`.
    """


cli.add_command(init)
cli.add_command(plan)
cli.add_command(apply)
cli.add_command(list_objects)
cli.add_command(materialize)
cli.add_command(materialize_incremental)
cli.add_command(serve)
cli.add_command(keys)
cli.add_command(stream)
cli.add_command(train)
cli.add_command(models)
cli.add_command(monitor)
cli.add_command(predict)
cli.add_command(scheduler)
cli.add_command(jobs)
cli.add_command(demo)
cli.add_command(ui)


def main() -> None:
    """Console-script entry point (``headwater``)."""
    cli()


if __name__ == "__main__":
    main()
