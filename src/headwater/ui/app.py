"""The dashboard app: login with the server's API keys, then one page per concept.

Routes: ``GET /`` (to the catalog), ``GET /<page>`` for each of :data:`PAGES`,
``GET|POST /login``, ``GET /logout``, ``GET /static/ui.css``, the icon (``GET
/static/icon.svg``, also as ``/favicon.ico``) and ``GET /health``. With auth on
(the same keys as ``headwater serve``: ``server.api_keys`` and ``HEADWATER_API_KEYS``) a page
needs a key, sent as the server takes it (``Authorization: Bearer``, ``X-API-Key``) or, from
a browser, entered once on the login page, which keeps it in an HttpOnly, SameSite=Strict
cookie; a request without one is sent to the login page. Pages render in a worker thread
(they read the registry and the offline store); a Headwater error becomes a page that says
what is wrong (404 for an unknown name, 503 for a store that does not answer, else 422).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from headwater.errors import AuthError, HeadwaterError, NotFoundError, StoreUnavailableError
from headwater.ui.html import CSS, ICON_SVG, esc, layout

if TYPE_CHECKING:
    from headwater.serving.auth import ApiKeys
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

COOKIE = "hw_ui_key"


def create_ui(store: FeatureStore, *, api_keys: ApiKeys | None) -> FastAPI:
    """The dashboard over ``store``; ``api_keys`` None turns auth off."""
    app = FastAPI(title="Headwater dashboard", docs_url=None, redoc_url=None,
                  openapi_url=None)
    names = {path: title for path, (title, _) in PAGES.items()}

    def allowed(request: Request) -> bool:
        if api_keys is None:
            return True
        headers = list(request.scope["headers"])
        cookie = request.cookies.get(COOKIE)
        if cookie:
            headers.append((b"x-api-key", cookie.encode()))
        try:
            api_keys.check(headers)
        except AuthError:
            return False
        return True

    @app.get("/static/ui.css")
    async def stylesheet() -> Response:
        return Response(CSS, media_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/static/icon.svg")
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
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0].strip()
        target = _local((form.get("next") or ["/catalog"])[0])
        if api_keys is not None:
            try:
                api_keys.check([(b"x-api-key", key.encode())])
            except AuthError as exc:
                return _login_page(store.project, target, str(exc), status=401)
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(COOKIE, key, httponly=True, samesite="strict")
        return answer

    @app.get("/logout")
    async def logout() -> Response:
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE)
        return answer

    def route(path: str) -> Callable[[Request], object]:
        async def page(request: Request) -> Response:
            if not allowed(request):
                return RedirectResponse(f"/login?next={quote('/' + path)}", status_code=303)
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
        app.add_api_route(f"/{path}", route(path), methods=["GET"], response_class=HTMLResponse)
    return app


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


def _local(target: str) -> str:
    """``target`` if it is a path of this app, else the catalog (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") else "/catalog"


def _login_page(project: str, target: str, error: str, *, status: int = 200) -> Response:
    message = f'<p class="badge bad">{esc(error)}</p>' if error else ""
    body = (f"{message}<form method=post action=/login class=search>"
            f'<input type=hidden name=next value="{esc(_local(target))}">'
            "<p>Enter an API key of this server (server.api_keys in headwater.yaml, or "
            "HEADWATER_API_KEYS).</p><input type=password name=key autofocus> "
            "<button type=submit>Sign in</button></form>")
    return HTMLResponse(layout("Sign in", body, pages={}, current="", project=project),
                        status_code=status)
