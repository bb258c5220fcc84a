"""Repo commands: ``init``, ``plan``, ``apply`` and ``list``."""

from __future__ import annotations

from pathlib import Path

import click

from headwater.cli import render

REPO_HELP = "The repo folder, holding headwater.yaml."

repo_option = click.option(
    "--repo", "-r", "repo", default=".", show_default=True,
    type=click.Path(file_okay=False, path_type=Path), help=REPO_HELP,
)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--project", "-p", default=None,
              help="Project name written to headwater.yaml (default: the folder's name).")
def init(directory: Path, project: str | None) -> None:
    """Create a runnable example repo in DIRECTORY.

    Writes headwater.yaml, a features.py defining the `driver` entity, the `driver_stats`
    feature view and the `driver_model` feature service, and generates the view's data in
    data/driver_stats.parquet. Never overwrites existing files.
    """
    from headwater.repo import init_repo

    render.init_done(init_repo(directory, project), directory)


@click.command()
@repo_option
def plan(repo: Path) -> None:
    """Show what `headwater apply` would create, update or delete.

    The repo's Python files are the source of truth: registered objects they no longer
    define are planned for deletion. Nothing is written.
    """
    from headwater.repo import load_repo
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        loaded = load_repo(repo)
        render.loaded(loaded, repo)
        render.plan(store.plan([d.obj for d in loaded], prune=True))


@click.command()
@repo_option
def apply(repo: Path) -> None:
    """Register every definition in the repo's Python files.

    Creates new objects, versions changed ones and deletes registered objects the files no
    longer define, all in one transaction. Invalid definitions fail with a message naming
    the object, the field and the fix, and then nothing is written.
    """
    from headwater.repo import load_repo
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        loaded = load_repo(repo)
        render.loaded(loaded, repo)
        render.plan(store.apply([d.obj for d in loaded], prune=True))


@click.command("list", short_help="List the registered entities, views and services.")
@repo_option
def list_objects(repo: Path) -> None:
    """List the registered entities, feature views (with features, types and ttl),
    on-demand feature views (with sources and features), feature services, models and
    scheduled jobs."""
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        render.catalog(store.project, store.list_entities(), store.list_feature_views(),
                       store.list_feature_services(), store.list_on_demand_feature_views(),
                       models=store.list_models(), jobs=store.list_jobs())
