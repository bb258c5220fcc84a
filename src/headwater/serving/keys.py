"""Scoped API keys: made once, stored hashed, checked in constant time.

A key reads ``hwk_<id>_<secret>``: ``id`` (12 hex digits) names the key in ``headwater keys
list`` and in logs of key management, and ``secret`` is 32 random bytes (URL-safe base64).
The registry keeps the key's SHA-256 (:func:`digest`), never the key: a key is shown once,
when ``headwater keys create`` makes it. The secret has 256 bits of entropy, so a fast hash
is enough (no password stretching: nothing to guess).

Scopes: ``read`` (``POST /features``, ``GET /health``, ``GET /metrics``, the dashboard's
pages), ``push`` (``POST /push``), ``predict`` (``POST /predict``) and ``admin`` (registry
changes and the dashboard's actions; an admin key may do everything). Keys listed in
``headwater.yaml`` (``server.api_keys``) or ``HEADWATER_API_KEYS`` are operator keys with
every scope.

:class:`KeyRing` is what the server checks a request against: the configured keys plus the
registry's active keys, re-read every :data:`REFRESH_SECONDS` (and at once, at most once a
second, when a key id it does not know is presented), so a key created or revoked in
another process counts in every server worker within that time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from headwater.errors import AuthError, DefinitionError, ForbiddenError
from headwater.registry.key_tables import StoredKey, key_tables

if TYPE_CHECKING:
    from headwater.store import FeatureStore

READ, PUSH, PREDICT, ADMIN = "read", "push", "predict", "admin"
SCOPES = (READ, PUSH, PREDICT, ADMIN)
"""Every scope a key may have (module docstring)."""
REFRESH_SECONDS = 5.0
"""How often a server re-reads the registry's keys (the delay before a revocation counts)."""
_UNKNOWN_REFRESH_SECONDS = 1.0
_PREFIX = "hwk_"
_KEY = re.compile(r"^hwk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@ -]{0,63}\Z")


def digest(key: str | bytes) -> str:
    """The hex SHA-256 the registry keeps of a key."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(b"headwater-api-key:" + raw).hexdigest()


def key_id(key: str | bytes) -> str | None:
    """The id of a well-formed scoped key, None for anything else (an operator key)."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    match = _KEY.match(text)
    return match.group(1) if match else None


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, each once in the order of :data:`SCOPES`; DefinitionError naming an
    unknown one or an empty list."""
    chosen = set(scopes)
    unknown = sorted(chosen - set(SCOPES))
    if unknown or not chosen:
        raise DefinitionError("API key", "scopes",
                              f"unknown scope(s) {unknown}" if unknown else "no scope given",
                              f"choose from {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in chosen)


def new_key(name: str, scopes: Iterable[str], now: datetime) -> tuple[str, StoredKey]:
    """A new key (shown once) and the record the registry keeps of it."""
    if not _NAME.match(name):
        raise DefinitionError("API key", "name", f"{name!r} is not a valid name",
                              "use 1-64 letters, digits, spaces and _ . @ -, starting with a "
                              "letter or digit")
    chosen = check_scopes(scopes)
    ident = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    key = f"{_PREFIX}{ident}_{secret}"
    return key, StoredKey(ident, name, digest(key), chosen, now)


def create_key(store: FeatureStore, name: str, scopes: Iterable[str]) -> tuple[str, StoredKey]:
    """Make a key for ``store``'s project and register its digest; returns the key (shown
    once: it is not kept) and its record."""
    key, stored = new_key(name, scopes, datetime.now(UTC))
    key_tables(store.registry.backend).add_key(store.project, stored)
    return key, stored


def list_keys(store: FeatureStore) -> list[StoredKey]:
    """Every key of ``store``'s project, revoked ones included, oldest first."""
    return key_tables(store.registry.backend).api_keys(store.project)


def revoke_key(store: FeatureStore, ident: str) -> StoredKey:
    """Revoke key ``ident`` (it stops working within :data:`REFRESH_SECONDS` everywhere);
    NotFoundError for an unknown id."""
    return key_tables(store.registry.backend).revoke_key(store.project, ident,
                                                         now=datetime.now(UTC))


def registry_loader(store: FeatureStore) -> Callable[[], list[StoredKey]]:
    """What a :class:`KeyRing` calls to read ``store``'s active keys."""
    tables = key_tables(store.registry.backend)
    return lambda: tables.api_keys(store.project, active_only=True)


def allows(scopes: Iterable[str], needed: str) -> bool:
    """Whether a key with ``scopes`` may do what needs ``needed`` (admin may do all)."""
    held = set(scopes)
    return needed in held or ADMIN in held


@dataclass(frozen=True)
class Identity:
    """Who a checked key is: ``ident`` (``operator:<n>`` for the n-th operator key, else the
    key's id), the key's ``digest`` and its ``scopes``."""

    ident: str
    digest: str = field(repr=False)
    scopes: tuple[str, ...]
    name: str = ""

    @property
    def label(self) -> str:
        """How logs and pages name the key (never the key itself)."""
        return "operator" if self.ident.startswith("operator:") else (
            f"key {self.ident} ({self.name})")


@dataclass
class KeyRing:
    """The keys a server accepts: ``operator`` keys (every scope) and the registry's
    active scoped keys, loaded by ``load`` (module docstring). Safe to share across
    threads."""

    operator: Sequence[bytes] = field(repr=False)
    load: Callable[[], list[StoredKey]] | None = field(default=None, repr=False)
    refresh_seconds: float = REFRESH_SECONDS
    _by_id: dict[str, StoredKey] = field(default_factory=dict, repr=False)
    _loaded_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._operators = {f"operator:{n}": digest(key) for n, key in enumerate(self.operator)}

    def check(self, presented: bytes | None, needed: str) -> Identity:
        """Who ``presented`` is, if it may do what needs the scope ``needed``; AuthError
        (401) for a missing or unknown key, ForbiddenError (403) for a valid key without
        the scope. Comparisons take the same time whatever matched."""
        if presented is None:
            raise AuthError("missing API key. Fix: send 'Authorization: Bearer <key>' or "
                            "'X-API-Key: <key>'")
        matched = -1
        for n, key in enumerate(self.operator):  # compare with every key: no early exit
            if hmac.compare_digest(presented, key):
                matched = n
        if matched >= 0:
            return self._operator(f"operator:{matched}")
        ident = key_id(presented)
        stored = self._stored(ident) if ident is not None else None
        if stored is None or not hmac.compare_digest(digest(presented), stored.digest):
            raise AuthError("the API key is not valid (unknown, revoked or mistyped). Fix: "
                            "use a key from 'headwater keys create', or one of server.api_keys")
        return self._allowed(Identity(stored.key_id, stored.digest, stored.scopes,
                                      stored.name), needed)

    def lookup(self, ident: str, needed: str) -> Identity | None:
        """The identity ``ident`` names now, if it is still accepted and may do what needs
        ``needed`` (None otherwise): for a session that stored only the id (the
        dashboard's cookie), so a revoked key's sessions end with it."""
        if ident.startswith("operator:"):
            return self._operator(ident) if ident in self._operators else None
        stored = self._stored(ident)
        if stored is None or not allows(stored.scopes, needed):
            return None
        return Identity(stored.key_id, stored.digest, stored.scopes, stored.name)

    def describe(self) -> str:
        """How many keys are accepted, for a start-up line (never the keys)."""
        scoped = len(self.load()) if self.load is not None else 0
        return f"{len(self.operator)} operator key(s), {scoped} scoped key(s)"

    @property
    def empty(self) -> bool:
        """No operator key and no active registry key (a server would accept nothing)."""
        return not self.operator and (self.load is None or not self.load())

    def _operator(self, ident: str) -> Identity:
        return Identity(ident, self._operators[ident], (ADMIN,))

    @staticmethod
    def _allowed(identity: Identity, needed: str) -> Identity:
        if not allows(identity.scopes, needed):
            raise ForbiddenError(
                f"API key {identity.ident} ({identity.name}) has the scope(s) "
                f"{', '.join(identity.scopes)}, and this needs '{needed}'. Fix: use a key "
                f"with that scope (headwater keys create --scope {needed})")
        return identity

    def _stored(self, ident: str) -> StoredKey | None:
        now = time.monotonic()
        with self._lock:
            stale = now - self._loaded_at >= self.refresh_seconds
            unknown = (ident not in self._by_id
                       and now - self._loaded_at >= _UNKNOWN_REFRESH_SECONDS)
            if self.load is not None and (stale or unknown):
                self._by_id = {k.key_id: k for k in self.load() if k.active}
                self._loaded_at = now
            return self._by_id.get(ident)
