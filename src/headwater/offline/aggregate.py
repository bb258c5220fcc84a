"""Windowed aggregation features in training frames, as sorted window scans in DuckDB.

For an entity row with keys ``k`` and time ``t``, an aggregation with window ``W`` and
granularity ``h`` has the value of its function over the events ``e`` of ``k`` with
``floor_h(t - W) <= e.ts < t`` (ARCHITECTURE.md, "Windowed aggregation"). No range join:

1. the *probes* are the distinct ``(k, t)`` of the entity rows (a row without a time or
   with a null key names no window and gets null for every aggregation, count included,
   as it gets nulls from latest-value views);
2. the view's events (only those of keys some probe has, and only times some window can
   reach) are put beside the probes, with null values, in one union;
3. one DuckDB window pass per distinct ``(W, h)``, partitioned by the keys and ordered by
   the time in integer microseconds, gives each probe the aggregate over the frame
   ``RANGE BETWEEN t - floor_h(t - W) PRECEDING AND 1 PRECEDING``: the per-row offset puts
   the tail at ``floor_h(t - W)`` and ``1 PRECEDING`` ends the frame just before ``t`` (all
   rows at ``t``, the probe itself included, are excluded). Events get an empty frame.
   Probes carry null values, so they never count in a frame;
4. the probes' values are joined back to the entity rows by equality on ``(k, t)``
   (:class:`~headwater.offline.pit_join.TimeKeyedJoin`).

The functions follow the online algebra (:mod:`headwater.aggregation`): nulls (and NaN) are
ignored; ``count`` counts non-null values; ``sum`` is exact for integer columns (DuckDB
sums BIGINT into HUGEINT; a sum beyond Int64 is a DataError when it is cast) and float64 for
floats; ``mean``; ``min``/``max`` keep the column's kind; ``stddev``/``variance`` are the
sample statistics (null for fewer than two values); ``last`` is the latest non-null value by
``(ts, created, ingestion order)``; ``count_distinct`` is exact offline (online it is exact up
to 256 distinct values per window, then a HyperLogLog estimate with a 1.6% standard error).
An empty window gives 0 for count, sum and count_distinct and null for the others. Floating
results may differ from online in the last bits, since summation order differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from headwater.definitions import Aggregation, FeatureView, Field
from headwater.offline.events import seq_sql
from headwater.offline.pit_join import ENTITY_ROWS, PROBE_TIME, TimeKeyedJoin, feature_column
from headwater.offline.sql_names import TIME, quote
from headwater.offline.view_rows import ViewRows
from headwater.types import (
    Bool,
    DType,
    Float32,
    Float64,
    Int32,
    Int64,
    String,
    from_micros,
    to_micros,
)

_SQL_TYPES = {Int32: "INTEGER", Int64: "BIGINT", Float32: "DOUBLE", Float64: "DOUBLE",
              Bool: "BOOLEAN", String: "VARCHAR"}
_ZERO_WHEN_EMPTY = ("count", "sum", "count_distinct")
_IS_PROBE = "__hw_probe"
_LAST_KEY = "__hw_lk"


def requested(view: FeatureView, features: Sequence[Field]) -> tuple[Aggregation, ...]:
    """The aggregations behind the requested features, in request order."""
    by_name = {a.name: a for a in view.aggregations}
    return tuple(by_name[f.name] for f in features)


def input_fields(view: FeatureView, aggregations: Sequence[Aggregation]) -> tuple[Field, ...]:
    """The schema fields (aggregated columns) the aggregations read, each once."""
    used = {a.column for a in aggregations}
    return tuple(f for f in view.schema or () if f.name in used)


def floor_sql(expr: str, granularity: int) -> str:
    """``floor_h(expr)`` for a BIGINT expression, rounding down also below zero (DuckDB's
    ``%`` takes the sign of the dividend)."""
    return f"({expr} - ((({expr}) % {granularity}) + {granularity}) % {granularity})"


def frame_sql(window: int, granularity: int) -> str:
    """The window frame of one ``(W, h)``: ``[floor_h(t - W), t)`` for probes, empty for
    events."""
    tail = floor_sql(f"{PROBE_TIME} - {window}", granularity)
    return (f"RANGE BETWEEN (CASE WHEN {_IS_PROBE} THEN {PROBE_TIME} - {tail} ELSE 0 END) "
            "PRECEDING AND 1 PRECEDING")


def _value_sql(expr: str, dtype: DType) -> str:
    """An aggregated column as its declared type, NaN read as null (as the algebra does)."""
    sql_type = _SQL_TYPES.get(dtype)
    if sql_type is None:  # Timestamp: read_view gives a UTC instant already
        return expr
    cast = f"CAST({expr} AS {sql_type})"
    if sql_type == "DOUBLE":
        return f"CASE WHEN isnan({cast}) THEN NULL ELSE {cast} END"
    return cast


def function_sql(agg: Aggregation, column: str, dtype: DType, window: str) -> str:
    """The window aggregate of one aggregation over ``column`` (a union column)."""
    value = f"CAST({column} AS BIGINT)" if dtype == Bool else column
    function = agg.function
    if function == "count":
        sql = f"count({column})"
    elif function == "count_distinct":
        sql = f"count(DISTINCT {column})"
    elif function == "last":
        sql = f"arg_max({column}, {_LAST_KEY})"
    else:
        name = {"sum": "sum", "mean": "avg", "min": "min", "max": "max",
                "stddev": "stddev_samp", "variance": "var_samp"}[function]
        sql = f"{name}({value})"
    sql = f"{sql} OVER {window}"
    return f"coalesce({sql}, 0)" if function in _ZERO_WHEN_EMPTY else sql


@dataclass(frozen=True)
class _Plan:
    """One aggregated view's part of the query: names shared by its steps."""

    index: int
    keys: tuple[str, ...]  # quoted
    aggregations: tuple[Aggregation, ...]
    fields: tuple[Field, ...]  # the aggregated columns, union column j is __hw_c{j}

    @property
    def prefix(self) -> str:
        return f"__hw_a{self.index}"

    @property
    def needs_last(self) -> bool:
        return any(a.function == "last" for a in self.aggregations)

    def column(self, name: str) -> tuple[str, DType]:
        """The union column and dtype of aggregated field ``name``."""
        j = next(j for j, f in enumerate(self.fields) if f.name == name)
        return f"__hw_c{j}", self.fields[j].dtype

    def values(self) -> list[str]:
        """The union's value columns (and the order key of ``last`` when needed)."""
        names = [f"__hw_c{j}" for j in range(len(self.fields))]
        return [*names, _LAST_KEY] if self.needs_last else names

    def not_null(self) -> str:
        return " AND ".join(f"{k} IS NOT NULL" for k in self.keys)


def _probes_sql(plan: _Plan) -> str:
    """Step 1: the distinct (keys, time in microseconds) of the entity rows."""
    keys = ", ".join(plan.keys)
    return (f"SELECT DISTINCT {keys}, epoch_us({quote(TIME)}) AS {PROBE_TIME} "
            f"FROM {ENTITY_ROWS} WHERE {plan.not_null()} AND {quote(TIME)} IS NOT NULL")


def _events_sql(plan: _Plan, rows: ViewRows) -> str:
    """Step 2a: the events some window can reach (bounds from :func:`_bounds`)."""
    values = [f"{_value_sql(expr, f.dtype)} AS __hw_c{j}"
              for j, (expr, f) in enumerate(zip(rows.features, plan.fields, strict=True))]
    if plan.needs_last:
        created = (f"coalesce(epoch_us({rows.created}), {-(2**63)})"
                   if rows.created is not None else "0")
        values.append(f"{{'t': epoch_us({rows.ts}), 'c': {created}, "
                      f"'s': {seq_sql(rows.scan.order)}}} AS {_LAST_KEY}")
    return (f"SELECT {', '.join(plan.keys)}, epoch_us({rows.ts}) AS {PROBE_TIME}, "
            f"{', '.join(values)} FROM {rows.scan.from_sql} "
            f"WHERE {rows.ts} >= $__hw_since_{plan.index} AND {rows.ts} < "
            f"$__hw_until_{plan.index} AND {plan.not_null()}")


def _union_sql(plan: _Plan) -> str:
    """Step 2b: the probes (null values) and the events of their keys, in one table."""
    keys = ", ".join(plan.keys)
    probes, events = f"{plan.prefix}_p", f"{plan.prefix}_ev"
    nulls = ", ".join(f"NULL AS {c}" for c in plan.values())
    passed = ", ".join(f"ev.{c}" for c in plan.values())
    return (f"SELECT {keys}, {PROBE_TIME}, true AS {_IS_PROBE}, {nulls} FROM {probes} "
            f"UNION ALL SELECT {', '.join(f'ev.{k}' for k in plan.keys)}, ev.{PROBE_TIME}, "
            f"false, {passed} FROM {events} AS ev SEMI JOIN "
            f"(SELECT DISTINCT {keys} FROM {probes}) USING ({keys})")


def _window_sql(plan: _Plan) -> str:
    """Step 3: one window pass per distinct (W, h), kept for the probes only."""
    frames = list(dict.fromkeys((a.window_us, a.granularity_us) for a in plan.aggregations))
    keys = ", ".join(plan.keys)
    windows = [f"__hw_w{n} AS (PARTITION BY {keys} ORDER BY {PROBE_TIME} {frame_sql(w, h)})"
               for n, (w, h) in enumerate(frames)]
    outputs = []
    for j, agg in enumerate(plan.aggregations):
        window = f"__hw_w{frames.index((agg.window_us, agg.granularity_us))}"
        column, dtype = plan.column(agg.column)
        outputs.append(f"{function_sql(agg, column, dtype, window)} "
                       f"AS {feature_column(plan.index, j)}")
    return (f"SELECT {keys}, {PROBE_TIME}, {', '.join(outputs)} FROM ({_union_sql(plan)}) "
            f"WINDOW {', '.join(windows)} QUALIFY {_IS_PROBE}")


def aggregate_join(index: int, view: FeatureView, features: Sequence[Field], rows: ViewRows,
                   entity_range: tuple[datetime | None, datetime | None]) -> TimeKeyedJoin:
    """The part of the training-frame query giving ``features`` (aggregations of ``view``)
    for every entity row; ``rows`` reads the view's source with :func:`input_fields`;
    ``entity_range`` is the earliest and latest entity time."""
    aggregations = requested(view, features)
    plan = _Plan(index, tuple(quote(k) for k in view.join_keys), aggregations,
                 input_fields(view, aggregations))
    prefix = plan.prefix
    ctes = (f"{prefix}_p AS ({_probes_sql(plan)})",
            f"{prefix}_ev AS ({_events_sql(plan, rows)})",
            f"{prefix} AS ({_window_sql(plan)})")
    params = {**rows.scan.params, **_bounds(index, aggregations, *entity_range)}
    return TimeKeyedJoin(index, view.join_keys, prefix, ctes, len(aggregations), params)


_FIRST = datetime.min.replace(tzinfo=UTC)


def _bounds(index: int, aggregations: Sequence[Aggregation], earliest: datetime | None,
            latest: datetime | None) -> dict[str, Any]:
    """The event times any window can reach: from the earliest window tail to before the
    latest entity time. Without entity times nothing is reachable."""
    since, until = f"__hw_since_{index}", f"__hw_until_{index}"
    if earliest is None or latest is None:
        return {since: _FIRST, until: _FIRST}
    t = to_micros(earliest)
    tail = min(t - a.window_us - (t - a.window_us) % a.granularity_us for a in aggregations)
    start = from_micros(tail) if tail > to_micros(_FIRST) else _FIRST
    return {since: start, until: latest}
