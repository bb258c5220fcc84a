"""API-key authentication for the feature server.

Keys come from ``headwater.yaml`` (``server: api_keys: [...]``, ``${VAR}`` allowed) and from
the environment variable ``HEADWATER_API_KEYS`` (comma-separated); both lists count. A
request presents one as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Every
configured key is compared with :func:`hmac.compare_digest`, so the time taken does not
reveal which key or how much of it matched. Keys are never logged or echoed.

Auth is on unless turned off explicitly (``headwater serve --no-auth`` or
``server: {auth: false}``); with auth on and no key configured the server refuses to start.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from headwater.config import ServerSettings
from headwater.errors import AuthError, ConfigError

API_KEYS_ENV = "HEADWATER_API_KEYS"
_BEARER = b"bearer "


@dataclass(frozen=True)
class ApiKeys:
    """The accepted keys (kept out of ``repr``)."""

    keys: tuple[bytes, ...] = field(repr=False)

    def check(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Raise AuthError unless the raw ASGI ``headers`` present an accepted key."""
        presented = presented_key(headers)
        if presented is None:
            raise AuthError("missing API key. Fix: send 'Authorization: Bearer <key>' or "
                            "'X-API-Key: <key>'")
        accepted = False
        for key in self.keys:  # compare with every key: no early exit to time
            accepted |= hmac.compare_digest(presented, key)
        if not accepted:
            raise AuthError("the API key is not valid. Fix: use a key listed in server.api_keys "
                            f"of headwater.yaml or in {API_KEYS_ENV}")


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
                 command: str = "headwater serve") -> ApiKeys | None:
    """The keys the server accepts, or None when auth is off; ConfigError when auth is on
    and no key is configured (naming ``command``'s ``--no-auth``)."""
    if no_auth or not settings.auth:
        return None
    env = os.environ if environ is None else environ
    from_env = [k.strip() for k in env.get(API_KEYS_ENV, "").split(",") if k.strip()]
    keys = tuple(dict.fromkeys([*settings.api_keys, *from_env]))
    if not keys:
        raise ConfigError(
            f"{command} needs API keys and none is configured. Fix: list keys in "
            f"headwater.yaml (server: {{api_keys: ['${{HEADWATER_API_KEY}}']}}) or set "
            f"{API_KEYS_ENV}=key1,key2; for local work only, turn auth off with "
            f"'{command} --no-auth' or 'server: {{auth: false}}'")
    return ApiKeys(tuple(k.encode() for k in keys))
