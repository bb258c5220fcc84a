"""The ASOF join's inequality key: tie-free, and a plain BIGINT whenever it can be.

A DuckDB ASOF join picks an arbitrary row among right rows whose inequality values tie, so
the key must order feature rows by ``(ts, created, ingestion order)`` with no ties, and the
entity row's key must sit just above every row with ``ts <= t``. Three encodings do this,
the first that fits is used:

* **bigint** (the fast path): ``code(ts) | code(created - ts) | code(order)`` in disjoint
  bit fields of one BIGINT. Each code is exact: the event time counted in units of the
  greatest common divisor of the rows' times (an hour for hourly data), the created delay
  ``created - ts`` likewise (plus one, so that a null created sorts first), the ingestion
  order as (file index, row in file) or row id. DuckDB sorts BIGINT keys far faster than
  wider ones, which keeps the join close to a plain ASOF on the event time. Whether the
  fields fit in 63 bits is decided by a sample of the rows (for the units) and one
  statistics pass over all the rows the join can use (for the ranges, and to check the
  units on every row).
* **hugeint**: the same fields in a HUGEINT when they need up to 127 bits (for instance
  created times scattered to the microsecond over millions of rows).
* **struct** (always correct): ``{t, c, o...}`` compared field by field.

The entity side is ``code(t)`` with every lower bit set (clamped to the rows' range, -1
before it), or ``{t, +infinity, max...}``; a null entity time gives a null key, which
matches nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from headwater.offline.timestamps import INSTANT
from headwater.types import EPOCH

if TYPE_CHECKING:
    import duckdb

_BITS = 63  # every key is a non-negative BIGINT; -1 is below them all
_WIDE_BITS = 127  # the same in a HUGEINT: slower to sort than BIGINT, faster than a struct
_SAMPLE = 65_536  # rows read to guess the units of the time fields
_MAX_ORDER = "9223372036854775807"
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class OrderKey:
    """SQL for both sides of the ASOF inequality ``entity_sql(t) >= feature_sql``;
    ``kind`` is ``bigint``, ``hugeint`` or ``struct``. Values derived from the data travel
    as ``params``; only bit widths the engine computes are written into the SQL."""

    feature_sql: str
    entity_template: str  # with {t}: the entity time as a TIMESTAMPTZ expression
    kind: str
    params: dict[str, Any]  # values the SQL names as $parameters

    def entity_sql(self, time_sql: str) -> str:
        """The entity row's key for a time expression (null when the time is null)."""
        key = self.entity_template.format(t=time_sql)
        return f"CASE WHEN {time_sql} IS NULL THEN NULL ELSE {key} END"


def struct_key(ts: str, created: str | None, order: Sequence[str]) -> OrderKey:
    """The always-correct struct key over instant expressions ``ts``/``created`` and the
    ingestion order parts (most significant first)."""
    right = [f"'t': {ts}"]
    left = ["'t': {t}"]
    if created is not None:
        right.append(f"'c': coalesce({created}, '-infinity'::{INSTANT})")
        left.append(f"'c': 'infinity'::{INSTANT}")
    for i, part in enumerate(order):
        right.append(f"'o{i}': {part}")
        left.append(f"'o{i}': {_MAX_ORDER}")
    return OrderKey("{" + ", ".join(right) + "}", "{{" + ", ".join(left) + "}}", "struct", {})


def choose(
    con: duckdb.DuckDBPyConnection,
    rows_sql: str,
    params: dict[str, Any],
    *,
    ts: str,
    created: str | None,
    order: Sequence[str],
    entity_range: tuple[datetime | None, datetime | None],
    name: str,
) -> OrderKey:
    """The narrowest key the rows of ``SELECT ... {rows_sql}`` (a FROM/WHERE clause with
    ``params``) fit. ``entity_range`` is the earliest and latest entity time; entity times
    outside the rows' range are clamped, never overflowed. The key's own parameters are
    named ``${name}_...``.

    Units come from a sample of the first rows (greatest common divisor of the differences),
    checked against every row in the same pass that finds the ranges; when the check fails
    the unit falls back to the largest power of two dividing every difference."""
    t = f"epoch_us({ts})"
    d = f"(epoch_us({created}) - {t})" if created is not None else "NULL::BIGINT"
    sample = con.sql(f"SELECT {t}, {d} {rows_sql} LIMIT {_SAMPLE}", params=params).fetchall()
    if not sample:
        return OrderKey(t, "epoch_us({t})", "bigint", {})  # no rows: nothing can tie
    t_anchor, t_unit = _sample_unit([row[0] for row in sample])
    d_anchor, d_unit = _sample_unit([row[1] for row in sample if row[1] is not None])
    parts = ", ".join(f"max({o})" for o in order)
    stats = con.sql(
        f"SELECT min({t}), max({t}), bit_or({t} - $ta), count(*) FILTER "
        f"(WHERE ({t} - $ta) % $tu <> 0), min({d}), max({d}), bit_or({d} - $da), "
        f"count(*) FILTER (WHERE ({d} - $da) % $du <> 0), {parts} {rows_sql}",
        params={**params, "ta": t_anchor, "tu": t_unit, "da": d_anchor, "du": d_unit},
    ).fetchall()[0]
    t_min, t_max, t_bits, t_off, d_min, d_max, d_bits, d_off, *order_max = stats
    unit = t_unit if t_off == 0 else 1 << _trailing_zeros(t_bits)
    values: dict[str, Any] = {f"{name}_tmin": t_min, f"{name}_unit": unit,
                              f"{name}_tcode": (t_max - t_min) // unit}
    fields = [(f"(({t} - ${name}_tmin) // ${name}_unit)", values[f"{name}_tcode"].bit_length())]
    if created is not None:
        if d_min is None:  # every created time is null: they all tie, as the first
            fields.append(("0", 1))
        else:
            step = d_unit if d_off == 0 else 1 << _trailing_zeros(d_bits)
            values.update({f"{name}_dmin": d_min, f"{name}_step": step})
            span = (d_max - d_min) // step + 1
            fields.append((f"coalesce(({d} - ${name}_dmin) // ${name}_step + 1, 0)",
                           span.bit_length()))
    for part, top in zip(order, order_max, strict=True):
        fields.append((f"({part})", max(int(top or 0), 0).bit_length()))
    total = sum(width for _, width in fields)
    if total > _WIDE_BITS or not _entity_fits(entity_range, t_min):
        return struct_key(ts, created, order)
    return _packed(fields, name, values, "BIGINT" if total <= _BITS else "HUGEINT")


def _sample_unit(values: list[int]) -> tuple[int, int]:
    """An anchor value and the greatest common divisor of the differences to it (at least
    1), from a sample; the caller checks the unit against every row."""
    if not values:
        return 0, 1
    anchor = int(values[0])
    unit = 0
    for value in values:
        unit = math.gcd(unit, int(value) - anchor)
    return anchor, unit or 1


def _packed(fields: list[tuple[str, int]], name: str, values: dict[str, Any],
            sql_type: str) -> OrderKey:
    """Shift each field into place in an integer of ``sql_type``, most significant first;
    the entity key is its time code (clamped to the rows' range, -1 before it) with every
    lower bit set."""
    remaining = sum(width for _, width in fields)
    terms = []
    for expr, width in fields:
        remaining -= width
        terms.append(f"(CAST({expr} AS {sql_type}) << {remaining})")
    low = sum(width for _, width in fields[1:])
    mask = f"CAST({(1 << low) - 1} AS {sql_type})"
    t = "epoch_us({t})"
    code = f"CAST(least(({t} - ${name}_tmin) // ${name}_unit, ${name}_tcode) AS {sql_type})"
    entity = f"CASE WHEN {t} < ${name}_tmin THEN -1 ELSE ({code} << {low}) | {mask} END"
    return OrderKey(" | ".join(terms), entity, sql_type.lower(), values)


def _trailing_zeros(value: int) -> int:
    return (value & -value).bit_length() - 1 if value else 0


def _entity_fits(entity_range: tuple[datetime | None, datetime | None], t_min: int) -> bool:
    """Whether ``epoch_us(t) - t_min`` stays far from BIGINT overflow for every entity time."""
    for moment in entity_range:
        if moment is None:
            continue
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        if abs((aware - EPOCH) // _MICROSECOND - t_min) >= 1 << _BITS:
            return False
    return True
