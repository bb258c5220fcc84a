"""Windowed aggregation features on Spark, with the DuckDB engine's exact semantics.

For an entity row with keys ``k`` and time ``t``, an aggregation with window ``W`` and
granularity ``h`` has the value of its function over the events ``e`` of ``k`` with
``floor_h(t - W) <= e.ts < t`` (ARCHITECTURE.md, "Windowed aggregation"):

1. the *probes* are the distinct ``(k, t)`` of the entity rows with a key and a time (others
   get null for every aggregation, count included, as on DuckDB);
2. each probe is joined to its key's events with ``tail <= e.ts < t``, ``tail`` the earliest
   tail of the view's aggregations (an equi-join on the keys with a range condition: the
   work grows with the events per window, not with the events per key);
3. one group per probe computes every aggregation, each over its own window
   (``e.ts >= floor_h(t - W)``) with a conditional value;
4. the values are joined back to the entity rows on ``(k, t)``.

The functions are those of :mod:`~headwater.offline.aggregate`: nulls and NaN ignored;
``count``; ``sum`` exact for integers (summed as DECIMAL(38); beyond Int64 it is the same
DataError as on DuckDB when cast) and float64 for floats; ``mean``; ``min``/``max``;
``stddev``/``variance`` (sample, null below two values); ``last`` (latest non-null value by
``(ts, created, ingestion order)``); ``count_distinct`` exact, like DuckDB's (online it is
exact up to 256 values then a HyperLogLog estimate). An empty window gives 0 for count, sum
and count_distinct and null for the others. Booleans aggregate as integers. Floating results
agree with DuckDB's to about 1e-15 relative (summation order differs).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from headwater.definitions import Aggregation, FeatureView, Field
from headwater.offline.aggregate import requested
from headwater.offline.pit_join import feature_column
from headwater.offline.spark_rows import TS, of_entity_keys, order_struct, value_column
from headwater.offline.spark_sources import col
from headwater.offline.sql_names import ROW, TIME
from headwater.types import Bool, DType, Float32, Float64, to_micros

_PROBE = "__hw_tp"
_EVENT = "__hw_te"
_LAST = "__hw_lk"


def _name(name: str) -> str:
    """A column name as a Spark SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def _floor(expr: str, granularity: int) -> str:
    """``floor_h(expr)`` for a BIGINT SQL expression, rounding down below zero too."""
    return f"(({expr}) - pmod({expr}, {granularity}))"


def _tail(window: int, granularity: int, probe: str = _PROBE) -> str:
    """The window tail ``floor_h(t - W)`` of a probe time (microseconds) ``probe``."""
    return _floor(f"{probe} - {window}", granularity)


def _value(name: str, dtype: DType) -> str:
    """An aggregated column, NaN read as null."""
    if dtype in (Float32, Float64):
        value = f"CAST({_name(name)} AS DOUBLE)"
        return f"CASE WHEN isnan({value}) THEN NULL ELSE {value} END"
    return _name(name)


def _function(agg: Aggregation, value: str, dtype: DType, within: str) -> str:
    """The aggregate (Spark SQL) of one aggregation over the joined events, ``within`` its
    window. Written as SQL text: one expression costs one call into the JVM, where the
    Python column API costs one per operator."""
    v = f"(CASE WHEN {within} THEN {value} END)"
    number = f"CAST({v} AS BIGINT)" if dtype == Bool else v
    wide = f"CAST({number} AS DECIMAL(38, 0))"
    floating = dtype in (Float32, Float64)
    function = agg.function
    if function == "count":
        return f"count({v})"
    if function == "count_distinct":
        # a set per group, not COUNT(DISTINCT): Spark plans several distinct aggregates
        # by copying every row once per aggregate. -0.0 is 0.0, as DuckDB counts it
        distinct = f"(CASE WHEN {v} = 0 THEN CAST(0 AS DOUBLE) ELSE {v} END)" if floating else v
        return f"size(collect_set({distinct}))"
    if function == "last":
        return f"max_by({v}, CASE WHEN {v} IS NOT NULL THEN {_LAST} END)"
    if function == "sum":
        if floating:
            return f"coalesce(sum({number}), CAST(0 AS DOUBLE))"
        return f"coalesce(sum({wide}), CAST(0 AS DECIMAL(38, 0)))"
    if function == "mean":
        if floating:
            return f"avg({number})"
        return f"CAST(sum({wide}) AS DOUBLE) / count({number})"
    sql = {"min": "min", "max": "max", "stddev": "stddev_samp", "variance": "var_samp"}.get(
        function)
    if sql is None:
        raise ValueError(f"unknown aggregation function {function!r}")  # definitions refuse it
    return f"{sql}(CAST({number} AS DOUBLE))" if function in ("stddev", "variance") else (
        f"{sql}({number})")


def aggregate_view(entity: Any, rows: Any, *, view: FeatureView, features: Sequence[Field],
                   fields: Sequence[Field], keys_as: Sequence[str], index: int,
                   entity_range: tuple[datetime | None, datetime | None],
                   few_keys: bool = False) -> Any:
    """The aggregation features ``features`` of ``view`` for every entity row: ``__hw_row``
    then ``__hw_v{index}_{j}``. ``rows`` comes from
    :func:`~headwater.offline.spark_rows.view_rows` with ``fields`` (the aggregated
    columns); ``keys_as`` are the Spark types the keys are compared as. With ``few_keys``
    only events of the entity rows' keys take part
    (:func:`~headwater.offline.spark_rows.of_entity_keys`)."""
    from pyspark.sql import functions as F

    keys = view.join_keys
    aggregations = requested(view, features)
    casts = [col(k).cast(t).alias(k) for k, t in zip(keys, keys_as, strict=True)]
    probes = entity.select(*casts, F.unix_micros(col(TIME)).alias(_PROBE))
    for k in keys:
        probes = probes.where(col(k).isNotNull())
    probes = probes.where(col(_PROBE).isNotNull()).distinct()
    earliest, latest = entity_range
    events = rows.select(*casts, F.unix_micros(col(TS)).alias(_EVENT),
                         order_struct().alias(_LAST),
                         *(col(value_column(j)) for j in range(len(fields))))
    if earliest is None or latest is None:
        events = events.where(F.lit(False))
    else:
        t = to_micros(earliest)
        since = min(t - a.window_us - (t - a.window_us) % a.granularity_us
                    for a in aggregations)
        events = events.where((col(_EVENT) >= F.lit(since)) &
                              (col(_EVENT) < F.lit(to_micros(latest))))
    for k in keys:
        events = events.where(col(k).isNotNull())
    if few_keys:
        events = of_entity_keys(events, keys, probes.select(*(col(k) for k in keys)))
    tails = {(a.window_us, a.granularity_us): _tail(a.window_us, a.granularity_us)
             for a in aggregations}
    probe_tails = [_tail(w, h, f"p.{_PROBE}") for w, h in tails]
    earliest_tail = f"least({', '.join(probe_tails)})" if len(tails) > 1 else probe_tails[0]
    keys_equal = " AND ".join(f"p.{_name(k)} = e.{_name(k)}" for k in keys)
    on = F.expr(f"{keys_equal} AND e.{_EVENT} >= {earliest_tail} AND e.{_EVENT} < p.{_PROBE}")
    joined = probes.alias("p").join(events.alias("e"), on=on, how="left").select(
        *(_at("p", k).alias(k) for k in keys), _at("p", _PROBE).alias(_PROBE),
        _at("e", _EVENT).alias(_EVENT), _at("e", _LAST).alias(_LAST),
        *(_at("e", value_column(j)).alias(value_column(j)) for j in range(len(fields))))
    names = [f.name for f in fields]
    outputs = []
    for j, agg in enumerate(aggregations):
        position = names.index(agg.column)
        dtype = fields[position].dtype
        within = f"{_EVENT} >= {tails[(agg.window_us, agg.granularity_us)]}"
        sql = _function(agg, _value(value_column(position), dtype), dtype, within)
        outputs.append(F.expr(sql).alias(feature_column(index, j)))
    values = joined.groupBy(*(col(k) for k in keys), col(_PROBE)).agg(*outputs)
    targets = entity.select(col(ROW), *casts, F.unix_micros(col(TIME)).alias(_PROBE))
    on = _all([_at("t", k) == _at("v", k) for k in keys] + [_at("t", _PROBE) == _at("v", _PROBE)])
    return targets.alias("t").join(values.alias("v"), on=on, how="left").select(
        _at("t", ROW).alias(ROW),
        *(_at("v", feature_column(index, j)).alias(feature_column(index, j))
          for j in range(len(aggregations))))


def _at(alias: str, name: str) -> Any:
    """Column ``name`` of the DataFrame aliased ``alias``."""
    from pyspark.sql import functions as F

    return F.col(f"{alias}.`" + name.replace("`", "``") + "`")


def _all(conditions: list[Any]) -> Any:
    """The conjunction of Spark column conditions."""
    combined = conditions[0]
    for more in conditions[1:]:
        combined = combined & more
    return combined
