"""``headwater ui``: the web dashboard over a repo."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--repo", "-r", "repo", default=".", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="The repo folder.")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", default=6567, show_default=True, type=click.IntRange(0, 65535),
              help="The port to listen on.")
@click.option("--no-auth", is_flag=True,
              help="Serve without API keys (local work only).")
def ui(repo: Path, host: str, port: int, no_auth: bool) -> None:
    """Serve the web dashboard: catalog, lineage, models, monitoring and jobs.

    Uses the feature server's API keys (server.api_keys in headwater.yaml or the
    HEADWATER_API_KEYS environment variable): a browser signs in once with one on the login
    page. Everything is served by Headwater itself; no internet is needed."""
    try:
        import uvicorn
    except ImportError as exc:
        raise click.ClickException(
            f"{exc.name} is not installed. Fix: pip install 'headwater[serve]'") from exc

    from headwater.serving.auth import resolve_keys
    from headwater.serving.keys import registry_loader
    from headwater.store import FeatureStore
    from headwater.ui.app import create_ui

    store = FeatureStore(repo)
    try:
        keys = resolve_keys(store.settings.server, no_auth=no_auth, command="headwater ui",
                            registry=registry_loader(store))
        auth = "off" if keys is None else keys.describe()
        click.echo(f"Dashboard of project '{store.project}' on http://{host}:{port} "
                   f"(auth {auth}). Press Ctrl+C to stop.")
        uvicorn.run(create_ui(store, api_keys=keys), host=host, port=port, access_log=False,
                    log_level="warning")
    finally:
        store.close()
