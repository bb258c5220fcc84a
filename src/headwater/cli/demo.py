"""``headwater demo``: run the demo with a progress bar and print what each step did."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from headwater.cli.render import console
from headwater.demo import STEPS, DemoResult, DemoSize, StepReport, run_demo
from headwater.demo.monitor import DRIFTED_RATE

_DEFAULT = DemoSize()


class _ProgressListener:
    """Moves the progress bar and prints a line as each demo step finishes."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task

    def step_started(self, index: int, name: str) -> None:
        self.progress.update(self.task, description=f"{name}...")

    def step_finished(self, index: int, report: StepReport) -> None:
        self.progress.advance(self.task)
        self.progress.console.print(
            f"[green]done[/] {index + 1}/{len(STEPS)} {escape(report.name)} "
            f"({report.seconds:.2f} s): {escape(report.detail)}"
        )


@click.command()
@click.option("--dir", "directory", default="demo_repo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo repo; a folder from an earlier demo run is replaced.")
@click.option("--drivers", default=_DEFAULT.n_drivers, show_default=True,
              type=click.IntRange(min=1), help="Number of drivers.")
@click.option("--hours", default=_DEFAULT.n_hours, show_default=True,
              type=click.IntRange(min=2), help="Hourly feature rows per driver.")
@click.option("--rows", default=_DEFAULT.n_rows, show_default=True,
              type=click.IntRange(min=20), help="Labelled entity rows to train and test on.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the generators.")
def demo(directory: Path, drivers: int, hours: int, rows: int, seed: int) -> None:
    """Run the loop end to end on generated data.

    Creates a repo from generated driver data and labels and applies it; trains the
    driver_conversion model (point-in-time training frame, time split, scikit-learn
    classifier, metrics, a registered version with lineage) and promotes it to production;
    materializes the features, starts the feature server, reads features and predictions
    over HTTP and checks them against the training frame and batch inference; scores every
    driver to Parquet; streams live events while serving. Prints the rows and seconds of
    every step.
    """
    out = console()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=out,
                  transient=True) as progress:
        task = progress.add_task("starting...", total=len(STEPS))
        result = run_demo(directory, DemoSize(drivers, hours, rows), seed=seed,
                          listener=_ProgressListener(progress, task))
    summary(result)


def summary(result: DemoResult) -> None:
    out = console()
    table = Table(title="Demo steps", title_justify="left")
    table.add_column("step")
    table.add_column("rows", justify="right")
    table.add_column("seconds", justify="right")
    for step in result.steps:
        table.add_row(step.name, "" if step.rows is None else f"{step.rows:,}",
                      f"{step.seconds:.2f}")
    out.print(table)
    out.print(f"Repo: {escape(str(result.repo))}")
    out.print(f"Model driver_conversion version {result.model_version} (production) trained "
              f"on {result.train_rows:,} rows, tested on the later {result.test_rows:,} rows; "
              f"total {result.seconds:.1f} s.")
    out.print(f"[bold]ROC AUC: {result.metric:.3f}[/]")
    served = result.served
    out.print(f"Online: POST /features p50 {served.p50_ms:.2f} ms, p99 {served.p99_ms:.2f} ms "
              f"over {served.requests} requests; served values equal the training frame's.")
    predicted = result.predicted
    out.print(f"Predictions: POST /predict p50 {predicted.p50_ms:.2f} ms, p99 "
              f"{predicted.p99_ms:.2f} ms over {predicted.requests} requests, equal to batch "
              f"inference; {result.scored_rows:,} drivers scored to Parquet.")
    live = result.live
    out.print(f"Live: {live.events:,} trip events streamed in {live.seconds:.1f} s while serving "
              f"{live.reads:,} reads (p99 {live.read_p99_ms:.2f} ms); event to online p50 "
              f"{live.fresh_p50_ms:.1f} ms, p99 {live.fresh_p99_ms:.1f} ms; trips_1h now "
              f"{result.live_values.get('trips_1h')}.")
    watched = result.monitored
    out.print(f"Monitor: drift flagged in {list(watched.drifted)} after conv_rate was pushed "
              f"near {DRIFTED_RATE} for {watched.pushed:,} drivers; {watched.alerts} webhook "
              f"alert(s); {watched.retrain}. Report: {watched.report}")
    out.print(f"Dashboard: headwater ui --repo {result.repo} --no-auth, then open "
              "http://127.0.0.1:6567 (catalog, lineage, models, monitoring, jobs)")
