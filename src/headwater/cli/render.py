"""How command results look in a terminal: rich tables and colored plan lines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from headwater.definitions import (
        Entity,
        FeatureService,
        FeatureView,
        Job,
        ModelSpec,
        OnDemandFeatureView,
    )
    from headwater.definitions.on_demand import OnDemandInput
    from headwater.registry.plan import Plan
    from headwater.repo import InitResult, LoadedDefinition

_ACTION_STYLE = {"create": "green", "update": "yellow", "delete": "red"}


def console() -> Console:
    """A console on the current stdout (looked up per call, so test runners can swap it)."""
    return Console(highlight=False, soft_wrap=True)


def init_done(result: InitResult, directory: Path) -> None:
    out = console()
    out.print(f"Created repo [bold]{escape(str(directory))}[/] for project "
              f"[bold]{escape(result.project)}[/]:")
    for path in result.files:
        out.print(f"  {escape(path.as_posix())}")
    out.print(f"with {result.data_rows:,} rows of generated driver data. Next:\n"
              f"  cd {escape(str(directory))} && headwater apply && headwater list")


def loaded(definitions: Sequence[LoadedDefinition], repo: Path) -> None:
    files = {d.path for d in definitions}
    console().print(f"Found {len(definitions)} definition(s) in {len(files)} file(s) "
                    f"in {escape(str(repo.resolve()))}")


def plan(result: Plan) -> None:
    out = console()
    for change in result.changes:
        out.print(f"[{_ACTION_STYLE.get(change.action, 'default')}]{escape(str(change))}[/]")
    summary = str(result).splitlines()[-1] if result.changes else str(result)
    out.print(f"[bold]{escape(summary)}[/]")


def catalog(project: str, entities: Sequence[Entity], views: Sequence[FeatureView],
            services: Sequence[FeatureService],
            on_demand: Sequence[OnDemandFeatureView] = (), *,
            models: Sequence[ModelSpec] = (), jobs: Sequence[Job] = ()) -> None:
    out = console()
    out.print(f"Project [bold]{escape(project)}[/]")

    table = Table(title=f"Entities ({len(entities)})", title_justify="left")
    for column in ("name", "join keys", "description"):
        table.add_column(column)
    for entity in entities:
        table.add_row(entity.name, ", ".join(entity.join_keys), entity.description)
    out.print(table)

    table = Table(title=f"Feature views ({len(views)})", title_justify="left")
    for column in ("name", "entities", "features", "ttl"):
        table.add_column(column)
    table.add_column("source", overflow="fold")
    for view in views:
        table.add_row(
            view.name,
            ", ".join(e.name for e in view.entities),
            "\n".join(f"{f.name}: {f.dtype}" for f in view.features),
            duration(view.ttl),
            escape(view.source.label()),
        )
    out.print(table)

    table = Table(title=f"On-demand feature views ({len(on_demand)})", title_justify="left")
    for column in ("name", "sources", "features", "mode"):
        table.add_column(column)
    for odfv in on_demand:
        table.add_row(
            odfv.name,
            "\n".join(escape(_source_label(s)) for s in odfv.sources),
            "\n".join(f"{f.name}: {f.dtype}" for f in odfv.features),
            odfv.mode,
        )
    out.print(table)

    table = Table(title=f"Feature services ({len(services)})", title_justify="left")
    for column in ("name", "features", "description"):
        table.add_column(column)
    for service in services:
        table.add_row(
            service.name,
            "\n".join(f"{p.view}:{'*' if p.features is None else ', '.join(p.features)}"
                      for p in service.features),
            service.description,
        )
    out.print(table)

    table = Table(title=f"Models ({len(models)})", title_justify="left")
    for column in ("name", "estimator"):
        table.add_column(column, no_wrap=True)
    for column in ("features", "label", "metrics"):
        table.add_column(column, overflow="fold")
    for model in models:
        table.add_row(model.name, model.estimator_class.rsplit(".", 1)[-1],
                      model.features.name, model.label.column, ", ".join(model.metrics))
    out.print(table)

    table = Table(title=f"Jobs ({len(jobs)})", title_justify="left")
    for column in ("name", "schedule (UTC)", "action"):
        table.add_column(column, no_wrap=True)
    for column in ("target", "retries"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        table.add_row(job.name, job.schedule, job.action, job.target or "all",
                      str(job.retries))
    out.print(table)


def _source_label(source: OnDemandInput) -> str:
    """``card_txn``, ``card_txn[amount_mean_1h]`` or ``request: amount``."""
    from headwater.definitions import FeatureView, RequestSource

    if isinstance(source, RequestSource):
        return f"{source.name} (request): {', '.join(f.name for f in source.schema)}"
    if isinstance(source, FeatureView):
        return source.name
    if source.features is None:
        return source.view
    return f"{source.view}[{', '.join(source.features)}]"


def duration(value: timedelta | None) -> str:
    """``1d``, ``2h30m``, ``45s``; ``none`` for no ttl."""
    if value is None:
        return "none"
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or f"{value.total_seconds()}s"
