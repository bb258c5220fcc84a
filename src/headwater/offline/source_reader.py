"""Reading sources into DuckDB: FileSource (Parquet, CSV) and SQLSource (PostgreSQL).

A :class:`SourceScan` is what the point-in-time join reads: a table expression, its
parameters, and SQL expressions giving each row's *ingestion order*, the last tie-break
between rows with the same key, event time and created time:

* Parquet is scanned in place; ingestion order is (file order, row number in file), from
  DuckDB's ``file_index`` and ``file_row_number`` virtual columns. The file order is that of
  :mod:`~headwater.offline.file_order`: files not written by push by path, then pushed
  files by push time.
* CSV has no row-number column in DuckDB, so the files are copied, in file order, into a
  temporary table (DuckDB preserves insertion order) and ``rowid`` is the order. Time columns
  are read as text so that a file mixing zoned and naive values is caught.
* A SQLSource's rows are fetched through ADBC into a temporary table, in the query's result
  order, with a ``ts <= max entity time`` filter pushed into PostgreSQL.

FileSource paths are relative to the repo folder: a file, a folder (every ``*.parquet`` or
``*.csv`` under it, recursively) or a glob (``data/*.parquet``, ``data/**/*.parquet``).

**File roots.** A FileSource reads only inside its *roots*: the repo folder, plus any
folders listed in the environment variable ``HEADWATER_FILE_ROOTS`` (absolute paths
separated by ``os.pathsep``) for data kept outside the repo. An absolute path outside them,
a symlink (the path itself, a folder on the way, or a file under a folder) that resolves
outside them, or a glob whose matches do, is a DefinitionError naming the path and the fix,
at apply time (the schema is read then) and at every read; ``..`` is refused when the
definition is made (:class:`~headwater.definitions.FileSource`). Offline pushes write only
inside the roots too (:func:`inside_roots`).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from headwater.config import Settings
from headwater.definitions import FileSource, Source, SQLSource
from headwater.errors import DataError, DefinitionError
from headwater.offline import sql_source
from headwater.offline.file_order import ingestion_sorted
from headwater.offline.sql_names import quote, unique_name
from headwater.offline.timestamps import TimeKind, time_kind

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_VIRTUAL = ("file_index", "file_row_number")
FILE_ROOTS_ENV = "HEADWATER_FILE_ROOTS"
"""Extra folders FileSource paths may name, besides the repo (``os.pathsep``-separated)."""


def file_roots(repo: Path) -> tuple[Path, ...]:
    """The folders FileSource paths may name, resolved: the repo folder, then each
    absolute folder of ``HEADWATER_FILE_ROOTS`` (relative entries are ignored)."""
    extra = [Path(p.strip()) for p in os.environ.get(FILE_ROOTS_ENV, "").split(os.pathsep)
             if p.strip() and Path(p.strip()).is_absolute()]
    return tuple(dict.fromkeys(p.resolve() for p in (Path(repo), *extra)))


def inside_roots(source: FileSource, path: PurePath, repo: Path) -> Path:
    """``path`` (relative to ``repo``, or absolute) as an absolute path, after checking that
    it lies inside the :func:`file_roots` once symlinks are resolved; DefinitionError
    naming ``source``'s path and the fix otherwise."""
    given = Path(path)
    absolute = given if given.is_absolute() else Path(repo) / given
    _check_resolved(source, absolute, file_roots(repo))
    return absolute


def _check_resolved(source: FileSource, path: Path, roots: tuple[Path, ...]) -> None:
    resolved = path.resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        shown = "" if resolved == path else f" (it resolves to {resolved})"
        raise DefinitionError(
            source.label(), "path", f"'{source.path}' names {path}{shown}, outside the "
            f"folders sources may read: {', '.join(str(r) for r in roots)}",
            "move or link the data inside the repo folder and give a path relative to it, "
            f"or list its folder in {FILE_ROOTS_ENV} (absolute paths, separated by "
            f"'{os.pathsep}')")


@dataclass(frozen=True)
class SourceScan:
    """One source as the join reads it: ``SELECT ... FROM {from_sql}`` with ``params``.

    ``order`` holds non-negative BIGINT expressions over the scan whose values, compared in
    turn, give the ingestion order (file index then row in file, or row id); ``schema`` the
    Arrow schema of the scanned columns. Temporary tables a scan creates live as long as
    the connection (each retrieval runs on its own cursor and closes it)."""

    from_sql: str
    params: dict[str, Any]
    order: tuple[str, ...]
    schema: pa.Schema


class SourceReader:
    """Reads sources into DuckDB connections, resolving paths and database URLs from
    ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def schema(self, con: duckdb.DuckDBPyConnection, source: Source) -> pa.Schema:
        """The Arrow schema of the source's rows, read from metadata or a ``LIMIT 0``."""
        if isinstance(source, SQLSource):
            return sql_source.read_schema(self._url(source), source)
        fs = _file_source(source)
        files = self.files(fs)
        sql = f"SELECT * FROM {_reader(fs)}($files{_options(fs)}) LIMIT 0"
        return _run_arrow(con, fs, sql, {"files": files}).schema

    def files(self, source: FileSource) -> list[str]:
        """The files a FileSource reads, in ingestion order (see
        :mod:`~headwater.offline.file_order`); DataError when there are none."""
        repo = self._settings.repo_path
        roots = file_roots(repo)
        given = Path(source.path)
        parts = source.glob_parts()
        base = inside_roots(source, given if parts is None else parts[0], repo)
        suffixes = (".parquet", ".pq") if source.format == "parquet" else (".csv", ".csv.gz")
        if source.is_glob:
            prefix = "" if given.is_absolute() else glob.escape(str(repo)) + "/"
            found = [Path(p) for p in glob.glob(prefix + source.path, recursive=True)]
            files = ingestion_sorted((p for p in found if p.is_file()), by_path=lambda p: p.parts)
        elif base.is_dir():
            files = ingestion_sorted((p for p in base.rglob("*") if p.is_file()
                                      and p.name.lower().endswith(suffixes)),
                                     by_path=lambda p: p.relative_to(base).parts)
        else:
            files = [base] if base.is_file() else []
        for path in files:  # a symlink under the folder, or a match, may lead outside
            _check_resolved(source, path, roots)
        if not files:
            what = "no file matches" if source.is_glob else "nothing at"
            raise DataError(
                f"{source.label()}: {what} path '{source.path}' (relative to the repo "
                f"{repo}). Fix: create the data there, or correct the source's path"
            )
        return [str(p) for p in files]

    def scan(
        self,
        con: duckdb.DuckDBPyConnection,
        source: Source,
        schema: pa.Schema,
        columns: Sequence[str],
        *,
        until: datetime | None,
        tag: str,
    ) -> SourceScan:
        """Prepare ``source`` for one query on ``con``; ``columns`` are those the join reads.

        ``schema`` is :meth:`schema` of the source; ``until`` the latest entity time (rows
        after it are never used); ``tag`` makes the parameter names unique in the query."""
        if isinstance(source, SQLSource):
            return self._fetch_sql(con, source, schema, columns, until)
        fs = _file_source(source)
        files = self.files(fs)
        if fs.format == "parquet" and not set(_VIRTUAL) & set(schema.names):
            name = f"{tag}_files"
            return SourceScan(f"read_parquet(${name}, hive_partitioning=false)", {name: files},
                              ("CAST(file_index AS BIGINT)", "file_row_number"), schema)
        return self._copy_files(con, fs, files, columns)

    def table_sql(self, con: duckdb.DuckDBPyConnection, source: Source, fetch: bool,
                  tag: str) -> tuple[str, dict[str, Any]]:
        """A ``SELECT`` over all of ``source`` (with its parameters) for a user's entity
        query to name as a table. A SQLSource is fetched only when ``fetch``; otherwise an
        empty table with its schema stands in, which is enough to bind the query."""
        if isinstance(source, SQLSource):
            schema = self.schema(con, source)
            if fetch:
                name = self._copy_sql(con, source, schema, None, None)
            else:
                name = unique_name("empty")
                con.register(name, schema.empty_table())
            return f"SELECT * FROM {quote(name)}", {}
        fs = _file_source(source)
        param = f"{tag}_files"
        return (f"SELECT * FROM {_reader(fs)}(${param}{_options(fs)})",
                {param: self.files(fs)})

    def _url(self, source: SQLSource) -> str:
        return sql_source.connection_url(self._settings, source)

    def _copy_files(self, con: duckdb.DuckDBPyConnection, source: FileSource,
                    files: list[str], columns: Sequence[str]) -> SourceScan:
        name = unique_name("src")
        select = ", ".join(quote(c) for c in columns)
        if source.format == "csv":
            text = {c: "VARCHAR" for c in source.time_columns()}
            sql = (f"CREATE TEMP TABLE {quote(name)} AS SELECT {select} "
                   "FROM read_csv($files, types=$types)")
            _run(con, source, sql, {"files": files, "types": text})
        else:
            sql = (f"CREATE TEMP TABLE {quote(name)} AS SELECT {select} FROM "
                   "read_parquet($files, hive_partitioning=false)")
            _run(con, source, sql, {"files": files})
        schema = con.sql(f"SELECT * FROM {quote(name)} LIMIT 0").to_arrow_table().schema
        return SourceScan(quote(name), {}, ("rowid",), schema)

    def _fetch_sql(self, con: duckdb.DuckDBPyConnection, source: SQLSource,
                   schema: pa.Schema, columns: Sequence[str],
                   until: datetime | None) -> SourceScan:
        name = self._copy_sql(con, source, schema, columns, until)
        copied = con.sql(f"SELECT * FROM {quote(name)} LIMIT 0").to_arrow_table().schema
        return SourceScan(quote(name), {}, ("rowid",), copied)

    def _copy_sql(self, con: duckdb.DuckDBPyConnection, source: SQLSource,
                  schema: pa.Schema, columns: Sequence[str] | None,
                  until: datetime | None) -> str:
        """Fetch the query's rows into a new temporary table, in result order; its name."""
        ts = source.timestamp_field
        pushable = ts in schema.names and time_kind(schema.field(ts).type) in (
            TimeKind.INSTANT, TimeKind.NAIVE)
        name = unique_name("src")
        arrow_name = unique_name("arrow")
        url = self._url(source)
        with sql_source.fetch(url, source, columns, until if pushable else None, ts) as reader:
            con.register(arrow_name, reader)
            try:
                con.sql(f"CREATE TEMP TABLE {quote(name)} AS SELECT * FROM "
                            f"{quote(arrow_name)}")
            finally:
                con.unregister(arrow_name)
        return name


def _file_source(source: Source) -> FileSource:
    if not isinstance(source, FileSource):
        raise DataError(f"{source.label()}: the DuckDB engine reads FileSource and SQLSource "
                        "only. Fix: use one of those source types")
    return source


def _reader(source: FileSource) -> str:
    return "read_csv" if source.format == "csv" else "read_parquet"


def _options(source: FileSource) -> str:
    """Parquet files are read as they are: DuckDB would otherwise add a column for each
    ``key=value`` folder (the ``date=...`` partitions of streamed events)."""
    return ", hive_partitioning=false" if source.format == "parquet" else ""


def _run(con: duckdb.DuckDBPyConnection, source: FileSource, sql: str,
         params: dict[str, Any]) -> None:
    import duckdb

    try:
        con.sql(sql, params=params)
    except (duckdb.IOException, duckdb.InvalidInputException,
            duckdb.ConversionException, duckdb.BinderException) as exc:
        raise _unreadable(source, exc) from exc


def _run_arrow(con: duckdb.DuckDBPyConnection, source: FileSource, sql: str,
               params: dict[str, Any]) -> pa.Table:
    import duckdb

    try:
        return con.sql(sql, params=params).to_arrow_table()
    except (duckdb.IOException, duckdb.InvalidInputException,
            duckdb.ConversionException, duckdb.BinderException) as exc:
        raise _unreadable(source, exc) from exc


def _unreadable(source: FileSource, exc: Exception) -> DataError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(
        f"{source.label()}: cannot read '{source.path}' as {source.format} ({detail}). Fix: "
        f"check that every file under that path is valid {source.format} with the same columns"
    )
