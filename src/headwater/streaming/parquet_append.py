"""Offline push: append pushed rows to a view's folder ``FileSource`` as a new Parquet file.

Only a Parquet source that is a folder (every ``*.parquet`` under it) or a glob whose
folders have no wildcard (``data/stats/*.parquet``) can take pushes: a new file lands in that
folder and the offline engine reads it with the others on its next query. A single file,
CSV or SQL source is a DefinitionError naming the fix (use a folder FileSource).

A push writes its file under a temporary name starting with ``.`` in the folder (a name no
source reads), fsyncs it, renames it atomically to ``push-<ns>-<id>.parquet``
(:func:`~headwater.offline.file_order.push_file_name`, ``<ns>`` the push time in
nanoseconds) and fsyncs the folder, so a reader sees the whole file or none of it and a
crash leaves at most a temporary file. A push of several files (events of several dates,
:mod:`~headwater.streaming.event_files`) renames them only once all are written, and a
failure removes every one, renamed or not (:func:`write_all_durably`): a push that raised
wrote nothing, so pushing it again writes each row once.

The offline reader orders pushed files by push time, after the source's other files
(:mod:`~headwater.offline.file_order` owns the name pattern), so in ties of event and
created time the later push wins offline as it does online. The file has the source's
columns, in its order and with its types, so DuckDB reads all files as one table.

Other views may read the same source, and a pushed row is the newest row of its entity for
all of them: a column left null would replace their values with nulls. So the pushed rows
must carry every column of the source's files (:func:`other_columns` are those beyond the
view's), or the push is a DataError naming the missing columns. The one exception is the
view's ``created_timestamp_field``: a row without a created time is null there, which every
view of the source reads alike (the row loses ties with rows of the same event time that
have one), offline as online. When the folder holds no file yet, the view's columns make
the first file.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from headwater.definitions import FeatureView, FileSource
from headwater.errors import DataError, DefinitionError, StoreUnavailableError
from headwater.offline.base import LATEST_CREATED, LATEST_TS
from headwater.offline.file_order import push_file_name
from headwater.offline.source_reader import inside_roots
from headwater.streaming.push_rows import utc_micros
from headwater.types import EPOCH

if TYPE_CHECKING:
    import pyarrow as pa

_FIX = ("give the view a folder FileSource of Parquet files, e.g. "
        "hw.FileSource('data/driver_stats/', timestamp_field=...), or push with to='online'")


@dataclass(frozen=True)
class PushFolder:
    """Where a view's pushed files go: ``folder``, and the glob components (relative to it)
    a new file's name must match, or None for a plain folder."""

    folder: Path
    pattern: tuple[str, ...] | None


def push_folder(view: FeatureView, repo: Path, *, partitioned: bool = False) -> PushFolder:
    """The folder of ``view``'s source that offline pushes append to, checked before any
    write; DefinitionError naming the fix when the source cannot take pushes.

    ``partitioned``: the files go to ``date=YYYY-MM-DD/`` subfolders (events of a push or
    stream source), so a glob source must match those paths too."""
    me = f"FeatureView '{view.name}'"
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise DefinitionError(me, "source", f"{source.label()} is a SQL query, which "
                              "offline pushes cannot append to", _FIX)
    if source.format != "parquet":
        raise DefinitionError(me, "source", f"{source.label()} is {source.format}; offline "
                              "pushes append Parquet files", _FIX)
    glob = source.glob_parts()
    if glob is not None:
        folder = inside_roots(source, glob[0], repo)  # never write outside the file roots
        pattern = glob[1]
        sample: tuple[str, ...] = (push_file_name(0, "0"),)
        if partitioned:
            sample = (partition_name(0), *sample)
        if not _matches(sample, pattern):
            raise DefinitionError(me, "source", f"a new file in {folder} would not match the "
                                  f"glob '{source.path}'", _FIX)
        return PushFolder(folder, pattern)
    path = inside_roots(source, PurePath(source.path), repo)
    if not (path.is_dir() or (not path.exists() and source.names_folder)):
        raise DefinitionError(me, "source", f"{source.label()} is a single file; offline "
                              "pushes add files to a folder", _FIX)
    return PushFolder(path, None)


def partition_name(day: int) -> str:
    """The partition folder of the events of ``day`` (days since the epoch, UTC):
    ``date=YYYY-MM-DD``."""
    return f"date={(EPOCH + timedelta(days=day)).date().isoformat()}"


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether relative path ``parts`` match glob ``pattern`` components as Python's
    recursive glob does (``**`` is zero or more folders)."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_matches(parts[i:], rest) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _matches(parts[1:], rest)


def other_columns(view: FeatureView, schema: pa.Schema | None) -> tuple[str, ...]:
    """The columns of the source's files (``schema``; None when there is no file yet) that
    ``view`` does not read: an offline push carries them for the source's other views."""
    if schema is None:
        return ()
    own = {*view.join_keys, *view.batch_source.time_columns(), *view.feature_names}
    return tuple(name for name in schema.names if name not in own)


def source_table(view: FeatureView, rows: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """Prepared rows (see :mod:`~headwater.streaming.push_rows`, with the
    :func:`other_columns` as extra columns) laid out as the source's files are: its column
    names, order and types. ``schema`` None (no file yet) keeps the prepared types.

    DataError, before anything is written, when a column of the source other than the
    view's created time is missing (see the module docstring)."""
    import pyarrow as pa

    source = view.batch_source
    named = {k: rows.column(k) for k in view.join_keys}
    named[source.timestamp_field] = rows.column(LATEST_TS)
    if source.created_timestamp_field is not None:
        named[source.created_timestamp_field] = rows.column(LATEST_CREATED)
    named.update({f.name: rows.column(f.name) for f in view.features})
    if schema is None:
        return pa.table(named)
    named.update({n: rows.column(n) for n in other_columns(view, schema)
                  if n in rows.column_names})
    missing = [n for n in schema.names if n not in named]
    if missing:
        raise DataError(
            f"offline push to feature view '{view.name}': missing column(s) {missing} of "
            f"{source.label()}. A pushed row is the newest row of its entity for every view "
            "of the source, so a missing column would hide their values behind nulls. Fix: "
            f"push full source rows (every column of its files: {schema.names}), or push "
            "with to='online'")
    times = set(source.time_columns())
    columns = {}
    for field in schema:
        column = named[field.name]
        if field.name in times:
            columns[field.name] = _as_time(column, field, source.label())
        elif pa.types.is_timestamp(field.type):  # another view's time, maybe a string
            column = utc_micros(column, field.name, f"offline push to feature view "
                                f"'{view.name}'")
            columns[field.name] = _as_time(column, field, source.label())
        else:
            columns[field.name] = _as_type(column, field, source.label())
    return pa.table(columns, schema=schema)


def _as_time(column: pa.ChunkedArray, field: pa.Field, label: str) -> pa.ChunkedArray:
    import pyarrow as pa

    kind = field.type
    if not pa.types.is_timestamp(kind):
        raise DataError(f"{label}: time column '{field.name}' is stored as {kind}; pushed "
                        "files hold timestamps. Fix: store it as a timestamp column")
    if kind.tz is None:
        column = column.cast(pa.timestamp("us"))  # naive values are UTC wall-clock times
    return _as_type(column, field, label)


def _as_type(column: pa.ChunkedArray, field: pa.Field, label: str) -> pa.ChunkedArray:
    import pyarrow as pa

    try:
        return column.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"{label}: pushed column '{field.name}' does not fit the source's "
                        f"type {field.type} ({exc}). Fix: push values that fit it, or widen "
                        "the column in the source's files") from exc


def append_file(target: PushFolder, table: pa.Table) -> Path:
    """Write ``table`` as a new Parquet file in the push folder, atomically and durably;
    returns its path."""
    name = push_file_name(time.time_ns(), uuid.uuid4().hex[:8])
    final = check_name(target, (name,))
    write_all_durably([(final, temp_path(final), table)])
    return final


def check_name(target: PushFolder, parts: tuple[str, ...]) -> Path:
    """The path of a new file at ``parts`` (relative to the folder), refused when a glob
    source would not read it."""
    if target.pattern is not None and not _matches(parts, target.pattern):
        raise DataError(f"a pushed file at {'/'.join(parts)} would not match the source's "
                        f"glob {'/'.join(target.pattern)}, so no read would see it. Fix: "
                        f"{_FIX}")
    return target.folder.joinpath(*parts)


def temp_path(final: Path) -> Path:
    """Where the file ``final`` is written before it is renamed there: a hidden name no
    source and no recovery reads."""
    return final.parent / f".{final.name}.tmp"


def write_all_durably(files: Iterable[tuple[Path, Path, pa.Table]], *,
                      rename: bool = True, replacing: bool = False) -> None:
    """Write each ``(final, temp, table)`` of ``files``: the table to ``temp``, fsynced;
    then, once all are written, (``rename``) rename each temporary file to its ``final``
    path and fsync their folders. Without ``rename`` the files stay at ``temp`` (pending
    files, see :mod:`~headwater.streaming.event_files`) and their folders are fsynced.

    All or nothing: on any failure (``files`` itself may raise, say a DataError for a name)
    every file written is removed again, temporary or renamed, and the error is raised (an
    OSError as a StoreUnavailableError naming the folder and the fix), so a retry writes
    each row once. Should a renamed file fail to go away too, the error names it.

    ``replacing``: each ``final`` exists and is replaced (a rewrite): a failure removes the
    temporary files only, so every ``final`` holds its old or its new content, never
    nothing."""
    import pyarrow.parquet as pq

    written: list[tuple[Path, Path]] = []  # (final, temp)
    shown: list[Path] = []
    where: Path | None = None
    done = False
    try:
        for final, temp, table in files:
            written.append((final, temp))
            where = final
            temp.parent.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as handle:
                pq.write_table(table, handle)
                handle.flush()
                os.fsync(handle.fileno())
        for final, temp in written if rename else ():
            where = final
            os.replace(temp, final)
            if not replacing:  # a replaced file is not removed on a failure
                shown.append(final)
        for folder in dict.fromkeys(temp.parent for _, temp in written):
            where = folder
            sync_folder(folder)
        done = True
    except OSError as exc:
        left = _undo(written, shown)
        done = True
        also = (f" The rows of {', '.join(map(str, left))} are visible already and could "
                "not be removed: delete those files before writing the rows again."
                if left else "")
        raise StoreUnavailableError(
            f"cannot write pushed rows to {where or 'the push folder'}: {exc}. Fix: check "
            f"that the folder is writable and the disk has free space.{also}") from exc
    finally:
        if not done:  # not an OSError: a name refused, an interrupt
            _undo(written, shown)


def _undo(written: list[tuple[Path, Path]], shown: list[Path]) -> list[Path]:
    """Remove the files ``shown`` (renamed visible) and every temporary file of
    ``written``; the shown ones that could not be removed."""
    left = [path for path in shown if not _remove(path)]
    for _, temp in written:
        _remove(temp)
    return left


def _remove(path: Path) -> bool:
    """Delete a file that may not exist; False when it exists and cannot be deleted. On a
    read-only folder even that raises (EROFS), which must not replace the error being
    raised."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        return False
    return True


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename in it survives a crash."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
