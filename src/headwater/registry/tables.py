"""What the storage mixins of the SQL registry (model, job, monitor and key tables) rely on.

:class:`~headwater.registry.sql.SQLRegistryBackend` mixes in :class:`ModelTables`,
:class:`JobTables`, :class:`MonitorTables` and :class:`KeyTables`; each is written against
:class:`SQLHost`, the four methods the backend supplies: ``_sql`` (the dialect's statement
text), ``_exclusive`` (the project's write transaction: ``BEGIN IMMEDIATE`` in SQLite, an
advisory lock in PostgreSQL), ``_read`` (a read cursor) and ``_time_param`` (a datetime as
the driver takes it).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any


class SQLHost:
    """The backend methods the table mixins call (declared for type checking only; the
    backend class defines them)."""

    if TYPE_CHECKING:
        def _sql(self, text: str) -> str: ...

        def _exclusive(self, project: str) -> AbstractContextManager[Any]: ...

        def _read(self) -> AbstractContextManager[Any]: ...

        def _time_param(self, value: datetime) -> Any: ...


def stored_time(value: Any) -> datetime:
    """A time as a driver returns it (a datetime from PostgreSQL, ISO text from SQLite) as
    an aware UTC datetime; naive values are UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def optional_stored_time(value: Any) -> datetime | None:
    """:func:`stored_time`, or None for NULL."""
    return None if value is None else stored_time(value)
