"""``train`` and ``models list|show|promote|diff|history``: the model registry from a shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from headwater.cli.commands import repo_option
from headwater.cli.progress import progress_bar
from headwater.cli.render import console

if TYPE_CHECKING:
    from headwater.models.base import AliasEvent, ModelVersion


@click.command()
@click.argument("model")
@click.option("--promote", "alias", default=None, metavar="ALIAS",
              help="Then point ALIAS (e.g. production) at the new version, if the model's "
                   "promotion rules pass.")
@repo_option
def train(model: str, alias: str | None, repo: Path) -> None:
    """Train the registered model MODEL and register the result as its next version.

    Builds the point-in-time training frame from the model's label source and feature
    service, splits it, fits, evaluates, stores the artifact with its SHA-256 and records
    the lineage. Prints the metrics and the version."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        with progress_bar() as progress:
            run = store.train(model, progress=progress)
        out = console()
        out.print(f"[bold]{escape(run.model)}[/] version [bold]{run.version}[/] "
                  f"(run {run.run_id[:12]}): {run.rows_train:,} train rows, "
                  f"{run.rows_test:,} test rows, fit {run.fit_seconds:.2f} s of "
                  f"{run.total_seconds:.2f} s")
        out.print("  " + ", ".join(f"{k} {v:.4f}" for k, v in run.metrics.items()))
        if alias is not None:
            event = store.promote(model, run.version, alias)
            _promoted(event)


@click.group()
def models() -> None:
    """The model registry: versions, aliases, promotion history and lineage."""


@models.command("list")
@repo_option
def list_models(repo: Path) -> None:
    """Every model with its versions, aliases and latest metrics."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        table = Table(title="Models", title_justify="left")
        for column in ("model", "versions", "latest", "aliases", "latest metrics"):
            table.add_column(column)
        specs = {m.name for m in store.list_models()}
        for name in sorted(specs | set(store.models.names())):
            versions = store.models.versions(name)
            aliases = store.models.aliases(name)
            latest = versions[-1] if versions else None
            table.add_row(
                name, str(len(versions)), str(latest.version) if latest else "-",
                ", ".join(f"{a}={v}" for a, v in sorted(aliases.items())) or "-",
                _metrics(latest) if latest else "not trained yet")
        console().print(table)


@models.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the version record as JSON.")
@repo_option
def show(ref: str, as_json: bool, repo: Path) -> None:
    """One version: REF is name@alias, name:version or name (= name@production)."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        version = store.get_model_version(ref)
        if as_json:
            click.echo(json.dumps(_record(version), indent=2, default=str))
            return
        out = console()
        out.print(f"[bold]{escape(version.model)}[/] version [bold]{version.version}[/] "
                  f"({escape(version.task)}, {escape(version.estimator_class)})")
        out.print(f"  aliases: {', '.join(version.aliases) or '-'}; created "
                  f"{version.created_at:%Y-%m-%d %H:%M:%S} UTC; run {version.run_id}")
        out.print(f"  metrics: {_metrics(version)}")
        out.print(f"  features ({len(version.features)}): {', '.join(version.features)}")
        out.print(f"  artifact: {escape(version.artifact.uri)} ({version.artifact.format}, "
                  f"sha256 {version.artifact.sha256[:16]}...)")
        for key, value in version.lineage.items():
            out.print(f"  {key}: {escape(json.dumps(value, default=str))}")


@models.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True,
              help="The alias to point at VERSION.")
@click.option("--force", is_flag=True,
              help="Skip the model's promotion rules (recorded as forced).")
@repo_option
def promote(model: str, version: int, alias: str, force: bool, repo: Path) -> None:
    """Point ALIAS of MODEL at VERSION, if the model's promotion rules pass."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        _promoted(store.promote(model, version, alias, force=force))


@models.command()
@click.argument("model")
@click.argument("a", type=int)
@click.argument("b", type=int)
@repo_option
def diff(model: str, a: int, b: int, repo: Path) -> None:
    """What changed from version A to version B of MODEL: metrics, parameters, input
    features and lineage (training data fingerprint, feature view versions, code)."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        changes = store.models.diff(model, a, b)
        out = console()
        out.print(f"[bold]{escape(model)}[/] version {a} -> {b}")
        table = Table(title="Metrics", title_justify="left")
        for column in ("metric", f"v{a}", f"v{b}", "change"):
            table.add_column(column, justify="right" if column != "metric" else "left")
        for name, (left, right, delta) in changes.metrics.items():
            table.add_row(name, _number(left), _number(right),
                          "-" if delta is None else f"{delta:+.4f}")
        out.print(table)
        for title, values in (("Parameters", changes.params), ("Lineage", changes.lineage)):
            out.print(f"{title}: " + ("unchanged" if not values else ""))
            for key, (left, right) in values.items():
                out.print(f"  {escape(key)}: {escape(json.dumps(left, default=str))} -> "
                          f"{escape(json.dumps(right, default=str))}")
        if changes.identical_inputs:
            out.print("Features: the same columns in the same order")
        else:
            out.print(f"Features: added {list(changes.features_added)}, removed "
                      f"{list(changes.features_removed)}"
                      + (", order changed" if changes.features_reordered else ""))


@models.command()
@click.argument("model")
@repo_option
def history(model: str, repo: Path) -> None:
    """The promotion history of MODEL: each alias move with its checks."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        table = Table(title=f"Promotions of {model}", title_justify="left")
        for column in ("at", "alias", "from", "to", "reason", "checks"):
            table.add_column(column)
        for event in store.models.history(model):
            table.add_row(f"{event.at:%Y-%m-%d %H:%M:%S}", event.alias,
                          _version(event.from_version), _version(event.to_version),
                          event.reason, event.describe_checks())
        console().print(table)


def _promoted(event: AliasEvent) -> None:
    console().print(f"{escape(event.model)}@{escape(event.alias)}: "
                    f"{_version(event.from_version)} -> {_version(event.to_version)} "
                    f"({escape(event.reason)}) {escape(event.describe_checks())}")


def _version(number: int | None) -> str:
    return "-" if number is None else str(number)


def _number(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _metrics(version: ModelVersion) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in version.metrics.items())


def _record(version: ModelVersion) -> dict[str, object]:
    return {
        "model": version.model, "version": version.version, "run_id": version.run_id,
        "task": version.task, "estimator_class": version.estimator_class,
        "features": list(version.features), "params": version.params,
        "metrics": version.metrics, "lineage": version.lineage,
        "artifact": version.artifact.to_dict(),
        "reference": None if version.reference is None else version.reference.to_dict(),
        "created_at": version.created_at.isoformat(), "aliases": list(version.aliases),
    }
