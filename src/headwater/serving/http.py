"""The feature server: the thin web edge over a FeatureStore (FastAPI, run by uvicorn).

Endpoints (request and response shapes in :mod:`~headwater.serving.schemas`):

* ``POST /features``: online features for entity rows;
* ``POST /predict``: predictions of a model version from online features, logged to
  ``settings.predictions_path`` in the background (:mod:`~headwater.serving.predict`,
  :mod:`~headwater.inference.log`);
* ``POST /push``: rows to a view's online store, offline store, or both;
* ``GET /health``: 200 when the online store and the registry answer, else 503 naming
  the one that does not;
* ``GET /metrics``: Prometheus text (:mod:`~headwater.serving.metrics`), summed over the
  workers when the server runs several;
* ``GET /openapi.json`` and ``GET /docs``: the schema, without auth (it holds no data).

Every endpoint but the schema needs an API key (:mod:`~headwater.serving.auth`). Errors
are mapped to status codes at the edge only (:func:`~headwater.serving.edge.error_status`):
a malformed body, a DataError or a DefinitionError is 422 with the field named;
NotFoundError (unknown view, feature, feature service, model, version or alias) is 404;
AuthError 401; StoreUnavailableError 503. Every error body is
``{"error": {"type", "message", "field"}}``. Anything else is a bug: logged with its
traceback and answered 500.

:func:`create_app` returns the :class:`~headwater.serving.edge.FeatureServer`, which
answers ``POST /features`` and ``POST /predict`` itself (the hot paths) and passes the other
requests to the FastAPI app built here. A push runs in a worker thread, since it may write
files. At shutdown the server writes the prediction log's pending rows before it stops.
``uvicorn --factory headwater.serving.http:app_from_env`` builds the app from the
environment (``HEADWATER_SERVE_REPO``, ``HEADWATER_SERVE_NO_AUTH``,
``HEADWATER_SERVE_METRICS_DIR``): that is how ``headwater serve --workers N`` gives each
worker process its own FeatureStore, and one metrics folder to all of them.

Workers share nothing but the stores: each reads the registry (and notices another
process's apply within :data:`~headwater.store.PLAN_REFRESH_SECONDS`, an alias moved within
:data:`~headwater.serving.predict.REFRESH_SECONDS`), reads and writes the online store, and
writes its own prediction log files (a random name per file, so workers never clash).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from headwater.errors import HeadwaterError, StoreUnavailableError
from headwater.inference.log import PredictionLog
from headwater.serving.auth import resolve_keys
from headwater.serving.edge import FeatureServer, error_body, error_status
from headwater.serving.keys import KeyRing, registry_loader
from headwater.serving.metrics import CONTENT_TYPE, SYNC_SECONDS, ServerMetrics, SharedMetrics
from headwater.serving.openapi import ERROR_RESPONSES, document, request_body
from headwater.serving.predict import REFRESH_SECONDS, PredictHandler
from headwater.serving.requests import parse_push
from headwater.serving.schemas import HealthResponse, PushResponse

if TYPE_CHECKING:
    from headwater.store import FeatureStore

REPO_ENV = "HEADWATER_SERVE_REPO"
NO_AUTH_ENV = "HEADWATER_SERVE_NO_AUTH"
METRICS_DIR_ENV = "HEADWATER_SERVE_METRICS_DIR"
JSON = "application/json"
_DEFAULT_FIELD = {"/push": "rows"}

_log = logging.getLogger("headwater.serving")


def create_app(store: FeatureStore, *, api_keys: KeyRing | None, own_store: bool = False,
               prediction_log: PredictionLog | None = None,
               model_refresh_seconds: float = REFRESH_SECONDS,
               metrics_dir: Path | None = None) -> FeatureServer:
    """The feature server over ``store``. ``api_keys`` None turns auth off; ``own_store``
    closes the store when the server shuts down. ``prediction_log`` defaults to one under
    ``store.settings.predictions_path``; the server closes it (writing what is pending) at
    shutdown. An alias is resolved again every ``model_refresh_seconds``. With
    ``metrics_dir`` (an existing folder shared by the server's workers) ``/metrics`` sums
    every worker's counts (:class:`~headwater.serving.metrics.SharedMetrics`). The FastAPI
    app is its ``api``."""
    metrics = ServerMetrics()
    log = prediction_log or PredictionLog(store.settings.predictions_path)
    predict = PredictHandler(store, metrics, log, model_refresh_seconds)
    shared = None if metrics_dir is None else SharedMetrics(metrics_dir, metrics)

    def count_log() -> None:
        for outcome, rows in (("written", log.written_rows), ("dropped", log.dropped_rows),
                              ("failed", log.failed_rows)):
            metrics.prediction_log.set((outcome,), rows)

    async def save_metrics(into: SharedMetrics) -> None:
        count_log()
        try:
            await run_in_threadpool(into.save, metrics.snapshot())
        except OSError as exc:  # the other workers' scrapes miss this one's latest counts
            _log.warning("could not save this worker's metrics under %s: %s", into.folder,
                         exc)

    async def share_metrics(into: SharedMetrics) -> None:
        while True:  # cancelled at shutdown
            await save_metrics(into)
            await asyncio.sleep(SYNC_SECONDS)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_open, store)  # fail at start-up, not on the first request
        await run_in_threadpool(predict.models.warm_up)
        log.start()
        sharing = None if shared is None else asyncio.create_task(share_metrics(shared))
        try:
            yield
        finally:
            await run_in_threadpool(log.close)
            if sharing is not None and shared is not None:
                sharing.cancel()
                await save_metrics(shared)  # the final counts, the log's last rows included
            if own_store:
                store.close()

    app = FastAPI(title="Headwater feature server", version=_version(), lifespan=lifespan,
                  redoc_url=None, description=(
                      f"Online features and push for project '{store.project}'. Send an "
                      "API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'. "
                      'Errors are {"error": {"type", "message", "field"}}.'))
    _add_error_handlers(app)

    @app.post("/push", response_model=PushResponse, responses=ERROR_RESPONSES,
              openapi_extra=request_body("PushRequest"), summary="Push rows")
    async def push(request: Request) -> Response:
        query = parse_push(await request.body())
        result = await run_in_threadpool(store.push, query.view, query.rows, query.to)
        metrics.push_rows.inc((result.view, result.to), result.rows)
        offline = None if result.offline_file is None else _relative(result.offline_file,
                                                                      store.repo_path)
        body = {"view": result.view, "to": result.to, "rows": result.rows,
                "online_stored": result.online_stored, "offline_file": offline}
        return Response(orjson.dumps(body), media_type=JSON)

    @app.get("/health", response_model=HealthResponse, summary="Dependencies reachable",
             responses={503: {"model": HealthResponse, "description": "A dependency is down"}})
    async def health() -> Response:
        checks = await run_in_threadpool(_checks, store)
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type=JSON)

    @app.get("/metrics", response_class=Response, summary="Prometheus metrics",
             responses={200: {"content": {CONTENT_TYPE: {}}}})
    async def prometheus() -> Response:
        count_log()
        text = metrics.render() if shared is None else await run_in_threadpool(
            shared.render, metrics.snapshot())
        return Response(text, media_type=CONTENT_TYPE)

    document(app, auth=api_keys is not None)
    return FeatureServer(app, store, metrics, api_keys, predict)


def app_from_env() -> FeatureServer:
    """The app factory uvicorn calls in each worker: the repo and the auth switch come
    from ``HEADWATER_SERVE_REPO`` and ``HEADWATER_SERVE_NO_AUTH`` (``1`` turns auth off),
    the workers' shared metrics folder from ``HEADWATER_SERVE_METRICS_DIR`` (unset or
    empty: this worker's counts only)."""
    from headwater.store import FeatureStore

    repo = os.environ.get(REPO_ENV)
    if not repo:
        raise HeadwaterError(f"{REPO_ENV} is not set. Fix: start the server with "
                             "'headwater serve --repo PATH'")
    store = FeatureStore(repo)
    keys = resolve_keys(store.settings.server, no_auth=os.environ.get(NO_AUTH_ENV) == "1",
                        registry=registry_loader(store))
    folder = os.environ.get(METRICS_DIR_ENV)
    return create_app(store, api_keys=keys, own_store=True,
                      metrics_dir=Path(folder) if folder else None)


def _add_error_handlers(app: FastAPI) -> None:
    def respond(status: int, kind: str, message: str, field: str | None) -> Response:
        return Response(error_body(kind, message, field), status_code=status,
                        media_type=JSON)

    async def headwater_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HeadwaterError):  # registered for HeadwaterError only
            raise exc
        status, kind, field = error_status(exc, _DEFAULT_FIELD.get(request.url.path))
        if status == 500:
            _log.error("unexpected %s on %s", type(exc).__name__, request.url.path,
                       exc_info=exc)
        return respond(status, kind, str(exc), field)

    async def validation_error(request: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        first = errors[0] if errors else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        return respond(422, "invalid_request", str(first.get("msg", exc)), field)

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # registered for HTTPException only
            raise exc
        return respond(exc.status_code, "http_error", str(exc.detail), None)

    async def internal_error(request: Request, exc: Exception) -> Response:
        # the process boundary: a bug, logged with its traceback and answered 500
        _log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return respond(500, "internal_error", "internal server error; see the server log",
                       None)

    app.add_exception_handler(HeadwaterError, headwater_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)


def _open(store: FeatureStore) -> None:
    store.registry.refresh()
    _ = store.online
    from headwater.definitions import PushSource, StreamSource

    if any(isinstance(v.source, PushSource | StreamSource) for v in store.list_feature_views()):
        from headwater.streaming.ingest import warm_up

        warm_up(store)  # the first push is not a second slower than the others


def _checks(store: FeatureStore) -> dict[str, str]:
    checks = {}
    probes: dict[str, Callable[[], object]] = {
        "online_store": store.online.ping,
        "registry": lambda: store.registry.backend.last_change_id(store.project),
    }
    for name, probe in probes.items():
        try:
            probe()
            checks[name] = "ok"
        except StoreUnavailableError as exc:
            checks[name] = f"unavailable: {exc}"
    return checks


def _relative(path: Path, repo: Path) -> str:
    try:
        return path.relative_to(repo).as_posix()
    except ValueError:
        return path.as_posix()


def _version() -> str:
    from headwater import __version__

    return __version__
