"""``keys create|list|revoke``: the server's scoped API keys (:mod:`headwater.serving.keys`)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from headwater.cli.commands import repo_option
from headwater.cli.render import console
from headwater.serving.keys import SCOPES


@click.group()
def keys() -> None:
    """API keys for 'headwater serve' and 'headwater ui', each with scopes: read
    (features, health, metrics, dashboard pages), push, predict, admin (everything,
    registry changes and dashboard actions). Keys are stored hashed in the registry and
    shown once, when created."""


@keys.command()
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(SCOPES), help="A scope of the key (repeat for several).")
@click.option("--json", "as_json", is_flag=True, help="Print the key and its record as JSON.")
@repo_option
def create(name: str, scopes: tuple[str, ...], as_json: bool, repo: Path) -> None:
    """Create a key named NAME and print it once (it is not stored: keep it safe).

    Example: headwater keys create scoring-service --scope read --scope predict
    """
    from headwater.serving.keys import create_key
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        key, stored = create_key(store, name, scopes)
    if as_json:
        click.echo(json.dumps({"key": key, "id": stored.key_id, "name": stored.name,
                               "scopes": list(stored.scopes),
                               "created_at": stored.created_at.isoformat()}))
        return
    click.echo(f"Created API key {stored.key_id} '{stored.name}' with scope(s) "
               f"{', '.join(stored.scopes)}. It is shown only now:")
    click.echo(key)


@keys.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per key.")
@repo_option
def list_keys_command(show_all: bool, as_json: bool, repo: Path) -> None:
    """The project's keys: id, name, scopes, created and revoked times (never the keys)."""
    from headwater.serving.keys import list_keys
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        found = [k for k in list_keys(store) if show_all or k.active]
    if as_json:
        for key in found:
            click.echo(json.dumps({
                "id": key.key_id, "name": key.name, "scopes": list(key.scopes),
                "created_at": key.created_at.isoformat(),
                "revoked_at": None if key.revoked_at is None else key.revoked_at.isoformat()}))
        return
    table = Table(title="API keys", title_justify="left")
    for column in ("id", "name", "scopes", "created (UTC)", "revoked (UTC)"):
        table.add_column(column, overflow="fold")
    for key in found:
        table.add_row(key.key_id, escape(key.name), ", ".join(key.scopes),
                      f"{key.created_at:%Y-%m-%d %H:%M}",
                      "" if key.revoked_at is None else f"{key.revoked_at:%Y-%m-%d %H:%M}")
    console().print(table)


@keys.command()
@click.argument("key_id")
@repo_option
def revoke(key_id: str, repo: Path) -> None:
    """Revoke the key KEY_ID (see 'headwater keys list'); servers refuse it within 5 s."""
    from headwater.serving.keys import REFRESH_SECONDS, revoke_key
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:
        stored = revoke_key(store, key_id)
    when = "" if stored.revoked_at is None else stored.revoked_at.isoformat(timespec="seconds")
    click.echo(f"Revoked API key {stored.key_id} '{stored.name}' at {when}; running servers "
               f"refuse it within {REFRESH_SECONDS:g} s.")
