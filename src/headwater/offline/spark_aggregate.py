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
from headwater.offline.spark_rows import TS, order_struct, value_column
from headwater.offline.spark_sources import col
from headwater.offline.sql_names import ROW, TIME
from headwater.types import Bool, DType, Float32, Float64, to_micros

_PROBE = "__hw_tp"
_EVENT = "__hw_te"


def _floor(expr: Any, granularity: int) -> Any:
    """``floor_h(expr)`` for a long expression, rounding down below zero too."""
    from pyspark.sql import functions as F

    return expr - F.pmod(expr, F.lit(granularity))


def _value(name: str, dtype: DType) -> Any:
    """An aggregated column, NaN read as null."""
    from pyspark.sql import functions as F

    value = col(name)
    if dtype in (Float32, Float64):
        value = value.cast("double")
        return F.when(~F.isnan(value), value)
    return value


def _function(agg: Aggregation, value: Any, dtype: DType, within: Any, last_key: Any) -> Any:
    """The aggregate of one aggregation over the joined events, ``within`` its window."""
    from pyspark.sql import functions as F

    v = F.when(within, value)
    number = v.cast("long") if dtype == Bool else v
    function = agg.function
    if function == "count":
        return F.count(v)
    if function == "count_distinct":
        return F.count_distinct(v)
    if function == "last":
        return F.max_by(v, F.when(v.isNotNull(), last_key))
    if function == "sum":
        if dtype in (Float32, Float64):
            return F.coalesce(F.sum(number), F.lit(0.0))
        return F.coalesce(F.sum(number.cast("decimal(38,0)")), F.lit(0).cast("decimal(38,0)"))
    if function == "mean":
        if dtype in (Float32, Float64):
            return F.avg(number)
        return (F.sum(number.cast("decimal(38,0)")).cast("double") / F.count(number))
    if function == "min":
        return F.min(number)
    if function == "max":
        return F.max(number)
    if function == "stddev":
        return F.stddev_samp(number.cast("double"))
    if function == "variance":
        return F.var_samp(number.cast("double"))
    raise ValueError(f"unknown aggregation function {function!r}")  # definitions refuse it


def aggregate_view(entity: Any, rows: Any, view: FeatureView, features: Sequence[Field],
                   fields: Sequence[Field], keys_as: Sequence[str], index: int,
                   entity_range: tuple[datetime | None, datetime | None]) -> Any:
    """The aggregation features ``features`` of ``view`` for every entity row: ``__hw_row``
    then ``__hw_v{index}_{j}``. ``rows`` comes from
    :func:`~headwater.offline.spark_rows.view_rows` with ``fields`` (the aggregated
    columns); ``keys_as`` are the Spark types the keys are compared as."""
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
                         order_struct().alias("__hw_lk"),
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
    tails = {(a.window_us, a.granularity_us):
             _floor(col(_PROBE) - F.lit(a.window_us), a.granularity_us) for a in aggregations}
    earliest_tail = F.least(*tails.values()) if len(tails) > 1 else next(iter(tails.values()))
    on = _all([_at("p", k) == _at("e", k) for k in keys] + [
        _at("e", _EVENT) >= earliest_tail.cast("long"), _at("e", _EVENT) < _at("p", _PROBE)])
    joined = probes.alias("p").join(events.alias("e"), on=on, how="left").select(
        *(_at("p", k).alias(k) for k in keys), _at("p", _PROBE).alias(_PROBE),
        _at("e", _EVENT).alias(_EVENT), _at("e", "__hw_lk").alias("__hw_lk"),
        *(_at("e", value_column(j)).alias(value_column(j)) for j in range(len(fields))))
    names = [f.name for f in fields]
    outputs = []
    for j, agg in enumerate(aggregations):
        position = names.index(agg.column)
        dtype = fields[position].dtype
        within = col(_EVENT) >= tails[(agg.window_us, agg.granularity_us)]
        outputs.append(_function(agg, _value(value_column(position), dtype), dtype, within,
                                 col("__hw_lk")).alias(feature_column(index, j)))
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
    combined = conditions[0]
    for more in conditions[1:]:
        combined = combined & more
    return combined
