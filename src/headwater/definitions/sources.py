"""Batch data sources: where feature rows come from.

Each source names its ``timestamp_field`` (the event time of a row) and may name a
``created_timestamp_field`` that breaks ties between rows with the same event time.
Sources hold no connection and do no I/O; the offline engine reads them.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import PurePath

from headwater.definitions.base import check_identifier, spec_type
from headwater.errors import DefinitionError

_FORMATS = ("parquet", "csv")
_GLOB_CHARS = frozenset("*?[")
"""Characters that make a FileSource path a glob pattern."""


@dataclass(frozen=True)
class Source(ABC):
    """Base of every source; ``timestamp_field`` names the event-time column."""

    timestamp_field: str
    created_timestamp_field: str | None

    def _check_time_fields(self, me: str) -> None:
        check_identifier(me, "timestamp_field", self.timestamp_field)
        if self.created_timestamp_field is not None:
            check_identifier(me, "created_timestamp_field", self.created_timestamp_field)
            if self.created_timestamp_field == self.timestamp_field:
                raise DefinitionError(
                    me, "created_timestamp_field", "is the same column as timestamp_field",
                    "name a separate column recording when each row was written, or omit it",
                )

    def time_columns(self) -> tuple[str, ...]:
        """The event-time column, then the created-time column if there is one."""
        if self.created_timestamp_field is None:
            return (self.timestamp_field,)
        return (self.timestamp_field, self.created_timestamp_field)

    @abstractmethod
    def label(self) -> str:
        """How messages name this source."""


@spec_type
@dataclass(frozen=True)
class FileSource(Source):
    """Rows in Parquet or CSV files: one file, a folder of Parquet files, or a glob.

    Relative paths are read relative to the repo folder, and every path must lead inside
    it (``..`` is refused here; absolute paths and symlinks are checked when the offline
    engine reads the source: :mod:`headwater.offline.source_reader`, which also names the
    variable that adds other folders). ``format`` is inferred from the
    extension (``.parquet``/``.pq``, ``.csv``/``.csv.gz``); a folder is read as Parquet.

    >>> FileSource("data/trips.parquet", timestamp_field="ts").format
    'parquet'
    """

    path: str
    format: str | None = None
    name: str | None = None
    description: str = ""

    def __init__(
        self,
        path: str | os.PathLike[str],
        timestamp_field: str,
        created_timestamp_field: str | None = None,
        *,
        format: str | None = None,
        name: str | None = None,
        description: str = "",
    ) -> None:
        me = f"FileSource '{name or path}'"
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise DefinitionError(me, "path", "no path given",
                                  "pass the path of a Parquet or CSV file, a folder or a glob")
        if ".." in PurePath(os.fspath(path)).parts:
            raise DefinitionError(me, "path", f"'{os.fspath(path)}' climbs out of its folder "
                                  "with '..'", "give a path inside the repo folder, relative "
                                  "to it (sources read only inside the repo, see "
                                  "headwater.offline.source_reader)")
        object.__setattr__(self, "path", os.fspath(path))
        object.__setattr__(self, "timestamp_field", timestamp_field)
        object.__setattr__(self, "created_timestamp_field", created_timestamp_field)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "format", format or _infer_format(me, self.path))
        if self.format not in _FORMATS:
            raise DefinitionError(me, "format", f"unknown format '{self.format}'",
                                  f"use one of {', '.join(_FORMATS)}")
        if name is not None:
            check_identifier(me, "name", name)
        self._check_time_fields(me)

    def label(self) -> str:
        return f"FileSource '{self.name or self.path}'"

    # What the path names: the one set of rules the offline reader, push and format
    # inference share. Definitions do no I/O; readers look at the disk first.

    @property
    def is_glob(self) -> bool:
        """Whether ``path`` is a glob pattern: it holds ``*``, ``?`` or ``[``."""
        return bool(_GLOB_CHARS & set(self.path))

    @property
    def names_folder(self) -> bool:
        """Whether ``path``, by its spelling alone, names a folder: it ends with a path
        separator, or its last component has no ``.`` (``data/trips``)."""
        return _names_folder(self.path)

    def glob_parts(self) -> tuple[PurePath, tuple[str, ...]] | None:
        """For a glob, the folder before the first component with a wildcard (``.`` when
        the first one has one) and the components from there on:
        ``data/**/*.parquet`` gives ``(data, ('**', '*.parquet'))``. None for a plain
        path."""
        parts = PurePath(self.path).parts
        wild = next((i for i, part in enumerate(parts) if _GLOB_CHARS & set(part)), None)
        if wild is None:
            return None
        return (PurePath(*parts[:wild]) if wild else PurePath("."), parts[wild:])


def _names_folder(path: str) -> bool:
    return path.endswith(("/", os.sep)) or "." not in PurePath(path).name


def _infer_format(me: str, path: str) -> str:
    lowered = PurePath(path).name.lower()
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith((".csv", ".csv.gz")):
        return "csv"
    if _names_folder(path):
        return "parquet"  # a folder of Parquet files
    raise DefinitionError(me, "format", f"cannot tell the format of '{path}' from its name",
                          "pass format='parquet' or format='csv'")


@spec_type
@dataclass(frozen=True)
class SQLSource(Source):
    """Rows returned by a SQL query against a database connection named in headwater.yaml.

    ``connection`` names an entry of ``offline.connections`` (``default`` unless given); the
    query runs there, read through a real connection at retrieval time.
    """

    query: str
    connection: str = "default"
    name: str | None = None
    description: str = ""

    def __init__(
        self,
        query: str,
        timestamp_field: str,
        created_timestamp_field: str | None = None,
        *,
        connection: str = "default",
        name: str | None = None,
        description: str = "",
    ) -> None:
        me = f"SQLSource '{name or 'query'}'"
        if not isinstance(query, str) or not query.strip():
            raise DefinitionError(me, "query", "no query given",
                                  "pass a SELECT statement, e.g. 'SELECT * FROM driver_stats'")
        object.__setattr__(self, "query", query.strip().rstrip(";"))
        object.__setattr__(self, "timestamp_field", timestamp_field)
        object.__setattr__(self, "created_timestamp_field", created_timestamp_field)
        object.__setattr__(self, "connection", connection)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "description", description)
        check_identifier(me, "connection", connection)
        if name is not None:
            check_identifier(me, "name", name)
        self._check_time_fields(me)

    def label(self) -> str:
        return f"SQLSource '{self.name or self.query[:40]}'"


def _batch(me: str, batch_source: object) -> Source:
    if not isinstance(batch_source, FileSource | SQLSource):
        raise DefinitionError(
            me, "batch_source", f"{batch_source!r} is not a batch source",
            "pass hw.FileSource('data/events/', timestamp_field=...) (a folder of Parquet "
            "files takes pushed and streamed events) or hw.SQLSource(...)",
        )
    return batch_source


@spec_type
@dataclass(frozen=True)
class PushSource(Source):
    """Rows pushed by clients (``store.push(name, rows)`` or ``POST /push``), kept in
    ``batch_source`` for offline reads. The time columns are the batch source's."""

    name: str
    batch_source: Source
    description: str = ""

    def __init__(self, name: str, batch_source: Source, *, description: str = "",
                 timestamp_field: str | None = None,
                 created_timestamp_field: str | None = None) -> None:
        me = f"PushSource '{name}'"
        check_identifier(me, "name", name)
        batch = _batch(me, batch_source)
        _same_time_fields(me, batch, timestamp_field, created_timestamp_field)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "batch_source", batch)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "timestamp_field", batch.timestamp_field)
        object.__setattr__(self, "created_timestamp_field", batch.created_timestamp_field)

    def label(self) -> str:
        return f"PushSource '{self.name}'"


@spec_type
@dataclass(frozen=True)
class StreamSource(Source):
    """Events read from a stream (Redis Streams or NATS JetStream, chosen in
    ``headwater.yaml``) by ``headwater stream``, and pushed in-process by ``store.push``.

    ``topic`` is the Redis stream key or the NATS subject (default: ``name``). Each message
    is one event as a JSON object with the batch source's columns. Events are also appended
    to ``batch_source`` (a folder of Parquet files, partitioned by date), which offline reads
    and backfills use, so training sees what serving saw. ``timestamp_field`` must be the
    batch source's time column."""

    name: str
    batch_source: Source
    topic: str = ""
    description: str = ""

    def __init__(self, name: str, timestamp_field: str, batch_source: Source,
                 created_timestamp_field: str | None = None, *, topic: str | None = None,
                 description: str = "") -> None:
        me = f"StreamSource '{name}'"
        check_identifier(me, "name", name)
        batch = _batch(me, batch_source)
        _same_time_fields(me, batch, timestamp_field, created_timestamp_field)
        topic = name if topic is None else topic
        if not isinstance(topic, str) or not topic or any(c.isspace() for c in topic):
            raise DefinitionError(me, "topic", f"{topic!r} is not a stream name",
                                  "pass a Redis stream key or NATS subject without spaces")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "batch_source", batch)
        object.__setattr__(self, "topic", topic)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "timestamp_field", timestamp_field)
        object.__setattr__(self, "created_timestamp_field", batch.created_timestamp_field)
        self._check_time_fields(me)

    def label(self) -> str:
        return f"StreamSource '{self.name}'"


def _same_time_fields(me: str, batch: Source, timestamp_field: str | None,
                      created_timestamp_field: str | None) -> None:
    if timestamp_field is not None and timestamp_field != batch.timestamp_field:
        raise DefinitionError(
            me, "timestamp_field", f"'{timestamp_field}' differs from the batch source's "
            f"'{batch.timestamp_field}'", "events and their offline copy share one time "
            f"column: use timestamp_field='{batch.timestamp_field}'")
    if (created_timestamp_field is not None
            and created_timestamp_field != batch.created_timestamp_field):
        raise DefinitionError(
            me, "created_timestamp_field", f"'{created_timestamp_field}' differs from the "
            f"batch source's {batch.created_timestamp_field!r}",
            "set created_timestamp_field on the batch source")


def batch_source_of(source: Source) -> Source:
    """The source the offline engine reads: the source itself, or a push or stream source's
    ``batch_source``."""
    if isinstance(source, PushSource | StreamSource):
        return source.batch_source
    return source
