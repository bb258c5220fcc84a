"""The point-in-time join as SQL, built from small named steps.

For an entity row with keys ``k`` and time ``t``, a view contributes the row ``r`` with
``r.k = k``, ``r.ts <= t`` and (with a ttl) ``r.ts >= t - ttl``; among those the greatest
``(r.ts, r.created_ts, ingestion order)``; none gives nulls.

The query is one DuckDB ``ASOF LEFT JOIN`` per view, chained, each on its own join keys. An
ASOF join picks an arbitrary row among right rows whose inequality values tie, so the
inequality is not the event time alone but a tie-free order key over ``(ts, created,
ingestion order)`` (see :mod:`~headwater.offline.order_key`); the entity side's key sits just
above every row with ``ts <= t``. So the ASOF match is exactly the rule's row, with no
deduplication pass. The ttl is applied after the match: when the matched row is older than
``t - ttl``, every other candidate is older too, so the view gives nulls.

Steps: :func:`entity_rows` normalizes the entity keys and time, :func:`rows_clause` limits a
view's rows to the times the entity rows can use, :func:`feature_rows` adds the order key
and features, :func:`asof_chain` joins everything and :func:`build_query` assembles the
statement, ordered by entity row position.

Windowed aggregations are computed elsewhere (:mod:`~headwater.offline.aggregate`) into a
table of values per distinct ``(keys, time)``; :class:`TimeKeyedJoin` joins such a table
to the entity rows by equality on the keys and the time, beside the ASOF joins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from headwater.offline.order_key import OrderKey
from headwater.offline.source_reader import SourceScan
from headwater.offline.sql_names import ROW, TIME, quote
from headwater.offline.timestamps import TimeKind, as_instant

ENTITY_ROWS = "__hw_e"
PROBE_TIME = "__hw_tp"
"""The time column (integer microseconds) of a :class:`TimeKeyedJoin`'s table."""
_TS = "__hw_ts"
_KEY = "__hw_o"


@dataclass(frozen=True)
class ViewJoin:
    """One view's part of the join.

    ``ts`` is the event time as a UTC instant expression over the scan; ``features`` are
    SQL expressions over the scan (already converted where the dtype needs it), named
    ``feature_column(index, j)`` in the result."""

    index: int
    keys: tuple[str, ...]
    scan: SourceScan
    ts: str
    order: OrderKey
    features: tuple[str, ...]
    ttl: timedelta | None


@dataclass(frozen=True)
class TimeKeyedJoin:
    """A view whose values are computed per distinct entity ``(keys, time)`` by ``ctes``
    (which may read :data:`ENTITY_ROWS`) into ``table``: the keys, ``__hw_tp`` (the time in
    integer microseconds) and ``width`` columns named :func:`feature_column`. Entity rows
    without a match get nulls."""

    index: int
    keys: tuple[str, ...]
    table: str
    ctes: tuple[str, ...]
    width: int
    params: dict[str, Any]


def feature_column(index: int, position: int) -> str:
    """The internal result column of feature ``position`` of view ``index``."""
    return f"__hw_v{index}_{position}"


def entity_rows(entity_table: str, keys: Sequence[str], kind: TimeKind) -> str:
    """Step 1: the entity rows' position, join keys and time as a UTC instant."""
    columns = [quote(ROW), *(quote(k) for k in dict.fromkeys(keys)),
               f"{as_instant(quote(TIME), kind)} AS {quote(TIME)}"]
    return f"SELECT {', '.join(columns)} FROM {quote(entity_table)}"


def rows_clause(scan: SourceScan, ts: str, index: int, ttl: timedelta | None) -> str:
    """Step 2: ``FROM ... WHERE ...`` over one view's rows that some entity row can use
    (parameters from :func:`time_bounds`): none after the latest entity time, and with a
    ttl none older than the earliest entity time minus the ttl."""
    until = f"__hw_until_{index}"
    where = f"{ts} <= ${until}"
    if ttl is not None:
        where += f" AND {ts} >= ${until}_since"
    return f"FROM {scan.from_sql} WHERE {where}"


def time_bounds(index: int, ttl: timedelta | None, earliest: datetime | None,
                latest: datetime | None) -> dict[str, Any]:
    """The parameters of :func:`rows_clause`. With no entity time at all every bound is
    unreachable, which is fine: entity rows without a time match nothing anyway."""
    until = f"__hw_until_{index}"
    bounds: dict[str, Any] = {until: latest if latest is not None else datetime.min}
    if ttl is not None:
        since = datetime.max
        if earliest is not None:
            floor = datetime.min.replace(tzinfo=earliest.tzinfo)  # no overflow near year 1
            since = earliest - ttl if earliest - floor > ttl else floor
        bounds[f"{until}_since"] = since
    return bounds


def feature_rows(join: ViewJoin) -> str:
    """Step 3: one view's usable rows with keys, event time, order key and features."""
    columns = [quote(k) for k in join.keys]
    columns.append(f"{join.ts} AS {_TS}")
    columns.append(f"{join.order.feature_sql} AS {_KEY}")
    columns.extend(f"{expr} AS {feature_column(join.index, j)}"
                   for j, expr in enumerate(join.features))
    return f"SELECT {', '.join(columns)} {rows_clause(join.scan, join.ts, join.index, join.ttl)}"


def asof_chain(joins: Sequence[ViewJoin]) -> str:
    """Step 4: the entity rows ASOF LEFT JOINed to every view, each on its own keys."""
    keys = ", ".join(f"{j.order.entity_sql(quote(TIME))} AS {_KEY}{j.index}" for j in joins)
    sql = f"(SELECT *{', ' + keys if keys else ''} FROM {ENTITY_ROWS}) AS e"
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


def _keyed_chain(joins: Sequence[TimeKeyedJoin]) -> str:
    """The LEFT JOINs of the time-keyed views, on their keys and the entity time."""
    sql = ""
    for j in joins:
        alias = f"a{j.index}"
        on = [f"e.{quote(k)} = {alias}.{quote(k)}" for k in j.keys]
        on.append(f"epoch_us(e.{quote(TIME)}) = {alias}.{PROBE_TIME}")
        sql += f"\nLEFT JOIN {j.table} AS {alias} ON {' AND '.join(on)}"
    return sql


def build_query(entity_table: str, entity_kind: TimeKind,
                joins: Sequence[ViewJoin | TimeKeyedJoin], earliest: datetime | None,
                latest: datetime | None) -> tuple[str, dict[str, Any]]:
    """Step 5: the whole statement and its parameters. The result has one row per entity
    row, ordered by position: ``__hw_row`` then each view's feature columns, in the order
    of ``joins``."""
    params: dict[str, Any] = {}
    keys = [k for j in joins for k in j.keys]
    ctes = [f"{ENTITY_ROWS} AS ({entity_rows(entity_table, keys, entity_kind)})"]
    asof = [j for j in joins if isinstance(j, ViewJoin)]
    keyed = [j for j in joins if isinstance(j, TimeKeyedJoin)]
    for j in asof:
        ctes.append(f"__hw_f{j.index} AS ({feature_rows(j)})")
        params.update(j.scan.params)
        params.update(time_bounds(j.index, j.ttl, earliest, latest))
        params.update(j.order.params)
        if j.ttl is not None:
            params[f"__hw_ttl_{j.index}"] = j.ttl
    for k in keyed:
        ctes.extend(k.ctes)
        params.update(k.params)
    select = [f"e.{quote(ROW)}"]
    for join in joins:
        if isinstance(join, ViewJoin):
            select.extend(_selected(join))
        else:
            select.extend(f"a{join.index}.{feature_column(join.index, p)}"
                          for p in range(join.width))
    sql = (f"WITH {', '.join(ctes)}\nSELECT {', '.join(select)}\nFROM {asof_chain(asof)}"
           f"{_keyed_chain(keyed)}\nORDER BY e.{quote(ROW)}")
    return sql, params
