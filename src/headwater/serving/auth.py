"""API-key authentication for the feature server and the dashboard.

Two kinds of key are accepted (:class:`~headwater.serving.keys.KeyRing`):

* **scoped keys** made with ``headwater keys create`` (:mod:`headwater.serving.keys`): the
  registry keeps their SHA-256 and scopes (read, push, predict, admin); a key created or
  revoked in another process counts here within
  :data:`~headwater.serving.keys.REFRESH_SECONDS`;
* **operator keys** from ``headwater.yaml`` (``server: api_keys: [...]``, ``${VAR}``
  allowed) and from the environment variable ``HEADWATER_API_KEYS`` (comma-separated),
  which may do everything.

A request presents one as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Each
endpoint needs a scope (:data:`SCOPE_OF`): a missing or unknown key is answered 401, a
valid key without the scope 403. Keys are compared with :func:`hmac.compare_digest` and
never logged or echoed.

Auth is on unless turned off explicitly (``headwater serve --no-auth`` or
``server: {auth: false}``); with auth on and no key at all (no operator key, no active
registry key) the server refuses to start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from headwater.config import ServerSettings
from headwater.errors import ConfigError
from headwater.registry.key_tables import StoredKey
from headwater.serving.keys import PREDICT, PUSH, READ, KeyRing

API_KEYS_ENV = "HEADWATER_API_KEYS"
_BEARER = b"bearer "

SCOPE_OF = {"/features": READ, "/push": PUSH, "/predict": PREDICT, "/health": READ,
            "/metrics": READ}
"""The scope each endpoint needs; any other path needs ``read`` (it answers 404 or 405)."""


def needed_scope(path: str) -> str:
    """The scope a request to ``path`` needs (:data:`SCOPE_OF`)."""
    return SCOPE_OF.get(path, READ)


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key of an ``Authorization: Bearer`` or ``X-API-Key`` header (lower-case names,
    as ASGI gives them), or None."""
    for name, value in headers:
        if name == b"authorization":
            if value[:len(_BEARER)].lower() == _BEARER:
                token = value[len(_BEARER):].strip()
                if token:
                    return token
        elif name == b"x-api-key":
            token = value.strip()
            if token:
                return token
    return None


def resolve_keys(settings: ServerSettings, *, no_auth: bool = False,
                 environ: Mapping[str, str] | None = None,
                 command: str = "headwater serve",
                 registry: Callable[[], list[StoredKey]] | None = None) -> KeyRing | None:
    """The keys the server accepts, or None when auth is off: the operator keys of the
    settings and the environment, and the registry's scoped keys read by ``registry``
    (:func:`~headwater.serving.keys.registry_loader`). ConfigError when auth is on and
    there is no key at all (naming ``command``'s ``--no-auth``)."""
    if no_auth or not settings.auth:
        return None
    env = os.environ if environ is None else environ
    from_env = [k.strip() for k in env.get(API_KEYS_ENV, "").split(",") if k.strip()]
    keys = tuple(dict.fromkeys([*settings.api_keys, *from_env]))
    ring = KeyRing(tuple(k.encode() for k in keys), registry)
    if ring.empty:
        raise ConfigError(
            f"{command} needs API keys and none is configured. Fix: create one with "
            "'headwater keys create NAME --scope read' (add --scope push, predict or admin "
            f"as needed), or list operator keys in headwater.yaml (server: {{api_keys: "
            f"['${{HEADWATER_API_KEY}}']}}) or {API_KEYS_ENV}=key1,key2; for local work only, "
            f"turn auth off with '{command} --no-auth' or 'server: {{auth: false}}'")
    return ring
