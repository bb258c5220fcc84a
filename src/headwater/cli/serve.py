"""``headwater serve``: run the feature server (uvicorn) over a repo."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import click

from headwater.cli.commands import REPO_HELP


@click.command()
@click.option("--repo", "-r", "repo", default=".", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help=REPO_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 for every interface).")
@click.option("--port", default=6566, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes; each opens its own FeatureStore.")
@click.option("--no-auth", is_flag=True,
              help="Serve without API keys (local work only).")
def serve(repo: Path, host: str, port: int, workers: int, no_auth: bool) -> None:
    """Serve online features over HTTP.

    Endpoints: POST /features, POST /push, GET /health, GET /metrics, and the OpenAPI
    schema at /openapi.json (browsable at /docs). Requests need an API key, sent as
    'Authorization: Bearer KEY' or 'X-API-Key: KEY': a scoped key from 'headwater keys
    create' (read for /features, /health and /metrics, push for /push, predict for
    /predict, admin for all), or an operator key from server.api_keys in
    headwater.yaml or the HEADWATER_API_KEYS environment variable (comma-separated); with
    no key configured the server does not start unless auth is off (--no-auth or
    'server: {auth: false}').

    With --workers N, N processes accept on the one port, each with its own connections
    to the stores; GET /metrics answers the sum over the workers (other workers' counts
    at most a second old). Every worker notices a registry change (another process's
    apply) within seconds. See docs/deployment.md.
    """
    from headwater.config import load_settings
    from headwater.serving.auth import resolve_keys

    try:
        import uvicorn
    except ImportError as exc:
        raise click.ClickException(
            f"{exc.name} is not installed. Fix: pip install 'headwater[serve]'") from exc

    settings = load_settings(repo)
    from headwater.serving.keys import registry_loader
    from headwater.store import FeatureStore

    with FeatureStore(repo) as store:  # refuse to start without keys
        keys = resolve_keys(settings.server, no_auth=no_auth, registry=registry_loader(store))
        auth = "off" if keys is None else keys.describe()
    from headwater.serving.http import METRICS_DIR_ENV, NO_AUTH_ENV, REPO_ENV

    os.environ[REPO_ENV] = str(settings.repo_path)  # read by each worker's app factory
    os.environ[NO_AUTH_ENV] = "1" if no_auth else "0"
    # several workers sum their metrics through snapshot files in a folder of this run's
    metrics_dir = tempfile.mkdtemp(prefix="headwater-metrics-") if workers > 1 else ""
    os.environ[METRICS_DIR_ENV] = metrics_dir
    click.echo(f"Serving project '{settings.project}' on http://{host}:{port} "
               f"({workers} worker(s), auth {auth}). Press Ctrl+C to stop.")
    try:
        uvicorn.run("headwater.serving.http:app_from_env", factory=True, host=host,
                    port=port, workers=workers, access_log=False, log_level="warning",
                    timeout_graceful_shutdown=10)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
