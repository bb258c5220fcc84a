"""Online stores: the latest record per (feature view, entity), for serving.

:func:`open_online_store` picks the backend named in ``headwater.yaml`` (``online: type:``)
and imports it only then, so ``import headwater`` never loads Redis or msgpack. The protocol
is :class:`headwater.online.base.OnlineStore`; keys and records are made by
:mod:`headwater.online.encoding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from headwater.errors import ConfigError, DataError
from headwater.online.encoding import ORDER_BYTES

if TYPE_CHECKING:
    from headwater.config import Settings
    from headwater.online.base import OnlineStore

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

__all__ = ["DEFAULT_REDIS_URL", "check_modified", "check_update", "check_write_batch",
           "open_online_store"]


def open_online_store(settings: Settings) -> OnlineStore:
    """The online store configured for a repo.

    SQLite keeps one file (``online: path:``, default ``.headwater/online.db``). Redis keys
    start with ``hw:<project>:``, so several projects can share one Redis database. With
    ``online: cluster: true`` the URL is any node of a Redis Cluster
    (:mod:`headwater.online.redis_cluster`).
    """
    online = settings.online
    retention = timedelta(hours=online.marker_retention_h)
    if online.type == "sqlite":
        from headwater.online.sqlite import SQLiteOnlineStore

        return SQLiteOnlineStore(online.path or settings.state_dir / "online.db",
                                 marker_retention=retention)
    if online.type == "redis":
        try:
            from headwater.online.redis import RedisOnlineStore
            from headwater.online.redis_cluster import RedisClusterOnlineStore
        except ImportError as exc:
            raise ConfigError(
                f"headwater.yaml sets 'online: type: redis' but {exc.name or 'redis'} is not "
                "installed. Fix: pip install 'headwater[redis]'") from exc
        if online.cluster:
            return RedisClusterOnlineStore(online.url or DEFAULT_REDIS_URL,
                                           project=settings.project, marker_retention=retention)
        return RedisOnlineStore(online.url or DEFAULT_REDIS_URL, project=settings.project,
                                marker_retention=retention)
    raise ConfigError(f"headwater.yaml: online store type '{online.type}' is not available. "
                      "Fix: use 'type: sqlite' or 'type: redis'")


def check_write_batch(view: str, keys: Sequence[bytes], records: Sequence[bytes]) -> None:
    """Reject a write batch that no backend can store correctly (for backend authors)."""
    if len(keys) != len(records):
        raise DataError(
            f"online write to view '{view}': {len(keys)} keys but {len(records)} records. "
            "Fix: pass one record per key")
    if records and min(map(len, records)) < ORDER_BYTES:
        raise DataError(
            f"online write to view '{view}': a record is shorter than its {ORDER_BYTES}-byte "
            "order header. Fix: build records with headwater.online.encoding.encode_record")


def check_update(view: str, scope: str | None, ids: Sequence[str],
                 markers: Sequence[str]) -> None:
    """Reject an update whose ids or markers have no scope to be marked under."""
    if scope is None and (ids or markers):
        raise DataError(
            f"online update of view '{view}': ids or markers were given without a scope. "
            "Fix: pass scope='...' (e.g. the stream and view) to mark them under")


def check_modified(view: str, keys: Sequence[bytes], records: dict[bytes, bytes]) -> None:
    """Reject what an update's ``modify`` returned when it names keys not asked for or
    records without an order header."""
    asked = set(keys)
    if not asked.issuperset(records):
        stray = next(key for key in records if key not in asked)
        raise DataError(f"online update of view '{view}': modify returned key {stray!r}, "
                        "which the update did not read. Fix: list every key in keys")
    if not set(map(type, records.values())) <= {bytes}:
        raise DataError(f"online update of view '{view}': modify returned a record that is "
                        "not bytes. Fix: return each record as bytes")
    if records and min(map(len, records.values())) < ORDER_BYTES:
        check_write_batch(view, list(records), list(records.values()))  # names the error
