"""The point-in-time join as SQL, built from small named steps.

For an entity row with keys ``k`` and time ``t``, a view contributes the row ``r`` with
``r.k = k``, ``r.ts <= t`` and (with a ttl) ``r.ts >= t - ttl``; among those the greatest
``(r.ts, r.created_ts, ingestion order)``; none gives nulls.

The query is one DuckDB ``ASOF LEFT JOIN`` per view, chained. An ASOF join picks an
arbitrary row among rows whose inequality values tie, so the inequality is not the event time
alone but a tie-free *order key*: the struct ``{t: ts, c: created, o: ingestion order}``
(``c`` only when the source has a created column), compared field by field. The entity side
uses ``{t: t, c: +infinity, o: max}``, so the ASOF match is exactly the greatest
``(ts, created, order)`` with ``ts <= t``; no deduplication pass is needed. A null created
time sorts before every created time. The ttl is applied after the match: when the matched
row is older than ``t - ttl``, every older row is too, so the view gives nulls.

Steps: :func:`entity_rows` normalizes the entity keys and time, :func:`feature_rows` reads
one view's rows with its order key and the time filters, :func:`asof_chain` joins them and
:func:`build_query` assembles the statement, ordered by entity row position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from headwater.offline.source_reader import SourceScan
from headwater.offline.sql_names import ROW, TIME, quote
from headwater.offline.timestamps import INSTANT, TimeKind, as_instant

ENTITY_ROWS = "__hw_e"
_TS = "__hw_ts"
_KEY = "__hw_o"
_MAX_ORDER = "9223372036854775807"


@dataclass(frozen=True)
class ViewJoin:
    """One view's part of the join.

    ``features`` are SQL expressions over the scan (already converted where the dtype needs
    it); the result names them ``feature_column(index, j)``."""

    index: int
    keys: tuple[str, ...]
    scan: SourceScan
    ts_kind: TimeKind
    timestamp_field: str
    created_kind: TimeKind | None
    created_field: str | None
    features: tuple[str, ...]
    ttl: timedelta | None


def feature_column(index: int, position: int) -> str:
    """The internal result column of feature ``position`` of view ``index``."""
    return f"__hw_v{index}_{position}"


def entity_rows(entity_table: str, keys: Sequence[str], kind: TimeKind) -> str:
    """Step 1: the entity rows' position, join keys and time as a UTC instant."""
    columns = [quote(ROW), *(quote(k) for k in dict.fromkeys(keys)),
               f"{as_instant(quote(TIME), kind)} AS {quote(TIME)}"]
    return f"SELECT {', '.join(columns)} FROM {quote(entity_table)}"


def _order_key(join: ViewJoin, ts: str, created: str | None, order: str) -> str:
    fields = [f"'t': {ts}"]
    if join.created_field is not None:
        fields.append(f"'c': {created}")
    fields.append(f"'o': {order}")
    return "{" + ", ".join(fields) + "}"


def feature_rows(join: ViewJoin) -> str:
    """Step 2: one view's rows with keys, event time, order key and features, limited to
    the times the entity rows can use (parameters from :func:`time_bounds`)."""
    ts = as_instant(quote(join.timestamp_field), join.ts_kind)
    created = None
    if join.created_field is not None and join.created_kind is not None:
        instant = as_instant(quote(join.created_field), join.created_kind)
        created = f"coalesce({instant}, '-infinity'::{INSTANT})"
    columns = [quote(k) for k in join.keys]
    columns.append(f"{ts} AS {_TS}")
    columns.append(f"{_order_key(join, ts, created, join.scan.order_sql)} AS {_KEY}")
    columns.extend(f"{expr} AS {feature_column(join.index, j)}"
                   for j, expr in enumerate(join.features))
    until = f"__hw_until_{join.index}"
    where = f"{ts} <= ${until}"
    if join.ttl is not None:
        where += f" AND {ts} >= ${until}_since"
    return f"SELECT {', '.join(columns)} FROM {join.scan.from_sql} WHERE {where}"


def time_bounds(join: ViewJoin, earliest: datetime | None,
                latest: datetime | None) -> dict[str, Any]:
    """The parameters of :func:`feature_rows`: rows after the latest entity time, or
    older than the earliest entity time minus the ttl, can never be picked. With no entity
    time at all, an impossible bound keeps every row out."""
    until = f"__hw_until_{join.index}"
    bounds: dict[str, Any] = {until: latest if latest is not None else datetime.min}
    if join.ttl is not None:
        bounds[f"{until}_since"] = (earliest - join.ttl if earliest is not None
                                    else datetime.max)
    return bounds


def _entity_order_key(join: ViewJoin) -> str:
    created = f"'infinity'::{INSTANT}"
    key = _order_key(join, quote(TIME), created, _MAX_ORDER)
    return f"CASE WHEN {quote(TIME)} IS NULL THEN NULL ELSE {key} END"


def asof_chain(joins: Sequence[ViewJoin]) -> str:
    """Step 3: the entity rows ASOF LEFT JOINed to every view, each on its own keys."""
    keys = ", ".join(f"{_entity_order_key(j)} AS {_KEY}{j.index}" for j in joins)
    sql = f"(SELECT *, {keys} FROM {ENTITY_ROWS}) AS e"
    for j in joins:
        alias = f"f{j.index}"
        on = [f"e.{quote(k)} = {alias}.{quote(k)}" for k in j.keys]
        on.append(f"e.{_KEY}{j.index} >= {alias}.{_KEY}")
        sql += f"\nASOF LEFT JOIN __hw_f{j.index} AS {alias} ON {' AND '.join(on)}"
    return sql


def _selected(join: ViewJoin) -> list[str]:
    alias = f"f{join.index}"
    out = []
    for position in range(len(join.features)):
        name = feature_column(join.index, position)
        value = f"{alias}.{name}"
        if join.ttl is not None:
            value = (f"CASE WHEN {alias}.{_TS} >= e.{quote(TIME)} - $__hw_ttl_{join.index} "
                     f"THEN {value} END")
        out.append(f"{value} AS {name}")
    return out


def build_query(entity_table: str, entity_kind: TimeKind, joins: Sequence[ViewJoin],
                earliest: datetime | None, latest: datetime | None) -> tuple[str, dict[str, Any]]:
    """Step 4: the whole statement and its parameters. The result has one row per entity
    row, ordered by position: ``__hw_row`` then each view's feature columns."""
    params: dict[str, Any] = {}
    keys = [k for j in joins for k in j.keys]
    ctes = [f"{ENTITY_ROWS} AS ({entity_rows(entity_table, keys, entity_kind)})"]
    for j in joins:
        ctes.append(f"__hw_f{j.index} AS ({feature_rows(j)})")
        params.update(j.scan.params)
        params.update(time_bounds(j, earliest, latest))
        if j.ttl is not None:
            params[f"__hw_ttl_{j.index}"] = j.ttl
    select = [f"e.{quote(ROW)}"] + [c for j in joins for c in _selected(j)]
    sql = (f"WITH {', '.join(ctes)}\nSELECT {', '.join(select)}\nFROM {asof_chain(joins)}"
           f"\nORDER BY e.{quote(ROW)}")
    return sql, params
