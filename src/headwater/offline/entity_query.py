"""Entity frames given as SQL: a query run in DuckDB over the registered views' sources.

Each entry of ``tables`` (a registered view name -> its source) that the query names is
visible to it as a table of that name holding the source's rows as stored. The query is
wrapped, never edited: ``WITH "view" AS (SELECT * FROM <source>) SELECT * FROM (<query>)``.
A SQLSource is fetched from its database only when the query names its view.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from headwater.definitions import Source
from headwater.errors import DataError
from headwater.offline.source_reader import SourceReader
from headwater.offline.sql_names import quote

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

ME = "entity query"


def _named(query: str, name: str) -> bool:
    """Whether ``query`` mentions ``name`` as a word (case-insensitive, as SQL reads it)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", query,
                     re.IGNORECASE) is not None


def wrapped(
    con: duckdb.DuckDBPyConnection,
    reader: SourceReader,
    query: str,
    tables: Mapping[str, Source],
    fetch: bool,
) -> tuple[str, dict[str, Any]]:
    """The query wrapped with one CTE per view it names, and the parameters of those CTEs.

    With ``fetch=False`` SQLSource views are empty stand-ins: enough to learn the result's
    schema without reading the database."""
    body = query.strip().rstrip(";").strip()
    if not body:
        raise DataError(f"{ME}: the query is empty. Fix: pass a SELECT statement, or a "
                        "DataFrame of entity rows")
    ctes: list[str] = []
    params: dict[str, Any] = {}
    for position, (name, source) in enumerate(tables.items()):
        if not _named(body, name):
            continue
        sql, more = reader.table_sql(con, source, fetch, f"__hw_t{position}")
        ctes.append(f"{quote(name)} AS ({sql})")
        params.update(more)
    prefix = f"WITH {', '.join(ctes)} " if ctes else ""
    return f"{prefix}SELECT * FROM (\n{body}\n) AS __hw_entity_query", params


def schema(con: duckdb.DuckDBPyConnection, reader: SourceReader, query: str,
           tables: Mapping[str, Source]) -> pa.Schema:
    """The Arrow schema of the query's result, without running it over the data."""
    sql, params = wrapped(con, reader, query, tables, fetch=False)
    return run(con, f"{sql} LIMIT 0", params, list(tables)).schema


def run(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any],
        names: list[str]) -> pa.Table:
    """Run a wrapped entity query; DuckDB's complaints become a DataError with the fix."""
    import duckdb

    try:
        return con.sql(sql, params=params).to_arrow_table()
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
            duckdb.ConversionException, duckdb.InvalidInputException) as exc:
        detail = str(exc).strip().splitlines()[0]
        known = ", ".join(sorted(names)) or "none registered"
        raise DataError(
            f"{ME}: DuckDB cannot run the query ({detail}). Fix: correct the SQL; it may "
            f"name registered feature views as tables ({known})"
        ) from exc
