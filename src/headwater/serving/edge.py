"""The outermost ASGI layer of the feature server: auth, metrics, error mapping, and the
``POST /features`` fast path.

:class:`FeatureServer` is the app uvicorn runs. For every HTTP request it checks the API key
(401 without a valid one, except for the public schema paths), counts and times the answer,
and hands the request to the FastAPI app, except ``POST /features`` and ``POST /predict``,
which it answers itself: read the body, parse it with orjson, read the online store through
the FeatureStore's compiled plans (and, for ``/predict``, run the cached model:
:mod:`~headwater.serving.predict`), write the response with orjson. That path skips the
framework's middleware, routing and dependency layers, which cost more than the read itself
(measured: about 0.15 ms of a 0.75 ms round trip). Their OpenAPI entries are declared in
:mod:`~headwater.serving.openapi` from the same models as the other routes.

The online read runs on the event loop: it takes tens of microseconds, a thread hop would
add more, and the Redis store bounds a stall with its 2 s timeout. A prediction runs there
too (a gradient-boosted model on one row takes well under a millisecond); loading a model
version happens on the first request for it and after an alias moves.

:func:`error_status` is the one mapping of Headwater errors to HTTP status codes.

Every request body, on every route, is read here and refused with 413 past
:data:`MAX_BODY_BYTES` (from its ``content-length`` before reading, or as it streams in);
the FastAPI routes get the body already read. Row limits per request are the parser's
(:mod:`~headwater.serving.requests`: 422 naming the limit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from headwater.errors import (
    AuthError,
    DataError,
    DefinitionError,
    ForbiddenError,
    HeadwaterError,
    NotFoundError,
    StoreUnavailableError,
)
from headwater.inference.online import MissingRequestField
from headwater.serving.auth import needed_scope, presented_key
from headwater.serving.plans import MAX_PLANS
from headwater.serving.requests import RequestBodyError, parse_features

if TYPE_CHECKING:
    from headwater.definitions import FeatureService
    from headwater.serving.keys import KeyRing
    from headwater.serving.metrics import ServerMetrics
    from headwater.serving.response import OnlineResponse
    from headwater.store import FeatureStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY
MAX_BODY_BYTES = 16 * 1024 * 1024
ENDPOINTS = frozenset({"/features", "/predict", "/push", "/health", "/metrics"})
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON_HEADERS = [(b"content-type", b"application/json")]

_log = logging.getLogger("headwater.serving")


def error_status(exc: HeadwaterError, default_field: str | None) -> tuple[int, str, str | None]:
    """``(status, type, field)`` for a Headwater error answered at the edge.

    ``default_field`` names the request field bad data came in (``entities``, ``rows``)."""
    if isinstance(exc, RequestBodyError | MissingRequestField):
        return 422, "invalid_request", exc.field
    if isinstance(exc, DefinitionError):
        return 422, "definition_error", exc.field
    if isinstance(exc, DataError):
        return 422, "data_error", default_field
    if isinstance(exc, NotFoundError):
        return 404, "not_found", None
    if isinstance(exc, ForbiddenError):
        return 403, "forbidden", None
    if isinstance(exc, AuthError):
        return 401, "unauthorized", None
    if isinstance(exc, StoreUnavailableError):
        return 503, "store_unavailable", None
    return 500, "internal_error", None


def error_body(kind: str, message: str, field: str | None) -> bytes:
    """The JSON body of every error: ``{"error": {"type", "message", "field"}}``."""
    return orjson.dumps({"error": {"type": kind, "message": message, "field": field}})


def features_body(response: OnlineResponse) -> dict[str, Any]:
    """The ``POST /features`` response (documented by ``FeaturesResponse``)."""
    return {
        "metadata": {"entity_names": response.entity_names,
                     "feature_names": response.feature_names},
        "results": response.to_dict(),
        "views": {name: {"event_timestamps": meta.event_timestamps,
                         "statuses": meta.statuses}
                  for name, meta in response.metadata.items()},
    }


class FeatureServer:
    """The ASGI app: the edge (module docstring) in front of the FastAPI app ``api``."""

    def __init__(self, api: ASGIApp, store: FeatureStore, metrics: ServerMetrics,
                 api_keys: KeyRing | None,
                 predict: Callable[[bytes], bytes] | None = None) -> None:
        self.api = api
        self.store = store
        self.metrics = metrics
        self.api_keys = api_keys
        self.predict = predict
        self._services: dict[str, tuple[FeatureService, int]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.api(scope, receive, send)
            return
        began = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        status = 500  # unless a response starts: an exception escaped

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.api_keys is not None and path not in PUBLIC_PATHS:
                try:
                    self.api_keys.check(presented_key(scope["headers"]), needed_scope(path))
                except ForbiddenError as exc:
                    await _respond(counted, 403, error_body("forbidden", str(exc), None))
                    return
                except AuthError as exc:
                    await _respond(counted, 401, error_body("unauthorized", str(exc), None),
                                   [(b"www-authenticate", b"Bearer")])
                    return
            handler = self._read_features if path == "/features" else (
                self.predict if path == "/predict" else None)
            if handler is not None:
                if method == "POST":
                    await self._answer(path, handler, scope, receive, counted)
                else:
                    await _respond(counted, 405, error_body(
                        "method_not_allowed", f"{method} {path} is not served. Fix: "
                        "send a POST with a JSON body", None), [(b"allow", b"POST")])
            elif method in _BODY_METHODS:  # read here, bounded, so every route has the limit
                body = await _bounded_body(scope, receive)
                if body is None:
                    await _too_large(path, counted)
                    return
                await self.api(scope, _replay(body, receive), counted)
            else:
                await self.api(scope, receive, counted)
        finally:
            self.metrics.request(path if path in ENDPOINTS else "other", method, status,
                                 time.perf_counter() - began)

    async def _answer(self, path: str, handler: Callable[[bytes], bytes], scope: Scope,
                      receive: Receive, send: Send) -> None:
        body = await _bounded_body(scope, receive)
        if body is None:
            await _too_large(path, send)
            return
        try:
            payload = handler(body)
        except HeadwaterError as exc:
            status, kind, field = error_status(exc, "entities")
            if status == 500:
                _log.error("unexpected %s on %s", type(exc).__name__, path, exc_info=exc)
            await _respond(send, status, error_body(kind, str(exc), field))
            return
        except Exception:  # noqa: BLE001  the process boundary: a bug, logged, answered 500
            _log.exception("unhandled error on %s", path)
            await _respond(send, 500, error_body(
                "internal_error", "internal server error; see the server log", None))
            return
        await _respond(send, 200, payload)

    def _read_features(self, body: bytes) -> bytes:
        query = parse_features(body)
        selection: tuple[str, ...] | FeatureService
        if query.features is not None:
            selection = query.features
        else:
            selection = self._service(query.feature_service or "")
        response = self.store.get_online_features(selection, query.entities,
                                                  query.full_feature_names)
        self.metrics.online_rows.inc((), len(query.entities))
        return orjson.dumps(features_body(response), option=JSON_OPTIONS)

    def _service(self, name: str) -> FeatureService:
        """A feature service, read from the registry once and again only after the
        registry changed (which the store's plan refresher notices in the background)."""
        generation = self.store.plan_generation()
        entry = self._services.get(name)
        if entry is not None and entry[1] == generation:
            return entry[0]
        service = self.store.get_feature_service(name)
        if len(self._services) >= MAX_PLANS:
            self._services.clear()
        self._services[name] = (service, generation)
        return service


async def _bounded_body(scope: Scope, receive: Receive) -> bytes | None:
    """The request body, or None when it is larger than MAX_BODY_BYTES: refused from its
    ``content-length`` before reading any of it, or once the bytes read pass the limit."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and (
                len(value) > 12 or int(value) > MAX_BODY_BYTES):
            return None
    return await _read_body(receive)


async def _too_large(path: str, send: Send) -> None:
    fix = "push fewer rows per request" if path == "/push" else (
        "ask for fewer entities per request")
    await _respond(send, 413, error_body(
        "invalid_request", f"the body exceeds {MAX_BODY_BYTES} bytes. Fix: {fix}", "body"))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then what the client sends
    next (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when it is larger than MAX_BODY_BYTES."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes,
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
