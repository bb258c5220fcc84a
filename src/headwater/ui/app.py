"""The dashboard app: login with the server's API keys, then one page per concept.

Routes: ``GET /`` (to the catalog), ``GET /<page>`` for each of :data:`PAGES`,
``GET /report?monitor=NAME`` (a monitor's full report), ``GET|POST /login``, ``GET /logout``,
``GET /static/ui.css``, the icon (``GET /static/icon.svg``, also as ``/favicon.ico``) and
``GET /health``. With auth on
(the same keys as ``headwater serve``, :mod:`~headwater.serving.auth`: a scoped key with
``read`` or ``admin``, or an operator key) a page needs a key, sent as the server takes it
(``Authorization: Bearer``, ``X-API-Key``) or, from a browser, entered once on the login
page, which keeps a session in an HttpOnly, SameSite=Strict cookie; a request without one
is sent to the login page (back to the page asked for, query included). The cookie never
holds the key itself: it holds the key's id and an HMAC of the id and the key's digest
under a secret drawn when the app starts (so a restart signs everyone out); each request
looks the id up again, so revoking a key ends its sessions. It is marked Secure when the
request came over https. Every answer carries a Content-Security-Policy that allows no
script and no other origin, and pages are not cached. Pages render in a worker thread
(they read the registry and the offline store); a Headwater error becomes a page that says
what is wrong (404 for an unknown name, 503 for a store that does not answer, else 422).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from headwater.errors import (
    AuthError,
    ForbiddenError,
    HeadwaterError,
    NotFoundError,
    StoreUnavailableError,
)
from headwater.serving.auth import presented_key
from headwater.serving.keys import READ
from headwater.ui.html import CSS, ICON, ICON_SVG, STYLESHEET, esc, layout

if TYPE_CHECKING:
    from headwater.serving.keys import KeyRing
    from headwater.store import FeatureStore

Render = Callable[["FeatureStore", Mapping[str, str]], str]

PAGES: dict[str, tuple[str, str]] = {
    "catalog": ("Catalog", "headwater.ui.catalog"),
    "lineage": ("Lineage", "headwater.ui.lineage"),
    "models": ("Models", "headwater.ui.models"),
    "monitoring": ("Monitoring", "headwater.ui.monitoring"),
    "jobs": ("Jobs", "headwater.ui.jobs"),
}
"""path -> (title, module with ``render(store, query) -> str``), in navigation order."""

COOKIE = "hw_ui_session"
MAX_LOGIN_BYTES = 8 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'none'; "
                                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                "frame-ancestors 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def create_ui(store: FeatureStore, *, api_keys: KeyRing | None) -> FastAPI:
    """The dashboard over ``store``; ``api_keys`` None turns auth off."""
    app = FastAPI(title="Headwater dashboard", docs_url=None, redoc_url=None,
                  openapi_url=None)
    names = {path: title for path, (title, _) in PAGES.items()}
    secret = secrets.token_bytes(32)

    def allowed(request: Request) -> bool:
        if api_keys is None:
            return True
        try:  # a key sent as the server takes it
            api_keys.check(presented_key(request.scope["headers"]), READ)
            return True
        except AuthError:
            pass
        ident, _, mac = request.cookies.get(COOKIE, "").partition(".")
        identity = api_keys.lookup(ident, READ) if ident and mac else None
        return identity is not None and hmac.compare_digest(
            mac.encode(), _session(secret, identity.ident, identity.digest))

    @app.middleware("http")
    async def secure(request: Request, call_next: Callable[[Request], Any]) -> Response:
        answer: Response = await call_next(request)
        answer.headers.update(SECURITY_HEADERS)
        if request.url.path not in STATIC:
            answer.headers["Cache-Control"] = "no-store"
        return answer

    @app.get(STYLESHEET)
    async def stylesheet() -> Response:
        return Response(CSS, media_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600"})

    @app.get(ICON)
    @app.get("/favicon.ico")
    async def icon() -> Response:
        return Response(ICON_SVG, media_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/health")
    async def health() -> Response:
        return Response("ok", media_type="text/plain")

    @app.get("/")
    async def home() -> Response:
        return RedirectResponse("/catalog", status_code=303)

    @app.get("/login")
    async def login_form(request: Request) -> Response:
        return _login_page(store.project, request.query_params.get("next", "/catalog"), "")

    @app.post("/login")
    async def login(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_LOGIN_BYTES:
                return _login_page(store.project, "/catalog", "the sign-in form is too "
                                   "large", status=413)
        form = parse_qs(body.decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0].strip()
        target = _local((form.get("next") or ["/catalog"])[0])
        if api_keys is None:
            return RedirectResponse(target, status_code=303)
        try:
            identity = api_keys.check(key.encode() or None, READ)
        except AuthError as exc:
            return _login_page(store.project, target, str(exc),
                               status=403 if isinstance(exc, ForbiddenError) else 401)
        answer = RedirectResponse(target, status_code=303)
        cookie = f"{identity.ident}.{_session(secret, identity.ident, identity.digest).decode()}"
        answer.set_cookie(COOKIE, cookie, httponly=True, samesite="strict",
                          secure=request.url.scheme == "https")
        return answer

    @app.get("/logout")
    async def logout() -> Response:
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE)
        return answer

    def route(path: str) -> Callable[[Request], object]:
        async def page(request: Request) -> Response:
            if not allowed(request):
                asked = f"/{path}" + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(asked)}", status_code=303)
            query = dict(request.query_params)
            try:
                body = await run_in_threadpool(_renderer(path), store, query)
                status = 200
            except NotFoundError as exc:
                body, status = _problem(exc), 404
            except StoreUnavailableError as exc:
                body, status = _problem(exc), 503
            except HeadwaterError as exc:
                body, status = _problem(exc), 422
            return HTMLResponse(layout(names[path], body, pages=names, current=path,
                                       project=store.project), status_code=status)
        return page

    for path in PAGES:
        app.add_api_route(f"/{path}", route(path), methods=["GET", "HEAD"],
                          response_class=HTMLResponse)

    @app.get("/report")
    async def report(request: Request) -> Response:
        """A monitor's full HTML report (``headwater monitor report``), as its own page."""
        from headwater.monitoring.report_html import monitor_report_html

        if not allowed(request):
            return RedirectResponse(f"/login?next={quote('/report?' + request.url.query)}",
                                    status_code=303)
        name = request.query_params.get("monitor", "")
        try:
            return HTMLResponse(await run_in_threadpool(monitor_report_html, store, name))
        except HeadwaterError as exc:
            status = (404 if isinstance(exc, NotFoundError) else
                      503 if isinstance(exc, StoreUnavailableError) else 422)
            return HTMLResponse(layout("Monitoring report", _problem(exc), pages=names,
                                       current="monitoring", project=store.project),
                                status_code=status)
    return app


STATIC = (STYLESHEET, ICON, "/favicon.ico")
"""Paths that may be cached (they hold no data)."""

_RENDERERS: dict[str, Render] = {}


def _renderer(path: str) -> Render:
    """The ``render`` function of a page, imported on first use."""
    found = _RENDERERS.get(path)
    if found is None:
        found = importlib.import_module(PAGES[path][1]).render
        _RENDERERS[path] = found
    return found


def _problem(exc: HeadwaterError) -> str:
    return f'<p class="badge bad">{esc(type(exc).__name__)}</p><p>{esc(exc)}</p>'


def _session(secret: bytes, ident: str, key_digest: str) -> bytes:
    """The signature of a signed-in key's session: an HMAC of its id and digest, hex (the
    cookie holds the id and this, never the key)."""
    return hmac.new(secret, f"{ident}\n{key_digest}".encode(), hashlib.sha256).hexdigest(
    ).encode()


def _local(target: str) -> str:
    """``target`` if it is a path of this app, else the catalog (no open redirect): it
    starts with one ``/``, and holds no backslash, control character, scheme or host."""
    parts = urlsplit(target)
    if (not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 32 or ord(c) == 127 for c in target) or parts.scheme
            or parts.netloc):
        return "/catalog"
    return target


def _login_page(project: str, target: str, error: str, *, status: int = 200) -> Response:
    message = f'<p class="badge bad">{esc(error)}</p>' if error else ""
    body = (f"{message}<form method=post action=/login class=search>"
            f'<input type=hidden name=next value="{esc(_local(target))}">'
            "<p>Enter an API key of this server with the read scope ('headwater keys create "
            "NAME --scope read'), or an operator key (server.api_keys in headwater.yaml, or "
            "HEADWATER_API_KEYS).</p><input type=password name=key autofocus> "
            "<button type=submit>Sign in</button></form>")
    return HTMLResponse(layout("Sign in", body, pages={}, current="", project=project),
                        status_code=status)
