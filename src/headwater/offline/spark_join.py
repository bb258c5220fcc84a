"""The point-in-time join on Spark, without a range join.

For an entity row with keys ``k`` and time ``t``, a view contributes the row ``r`` with
``r.k = k``, ``r.ts <= t`` and (with a ttl) ``r.ts >= t - ttl``; among those the greatest
``(r.ts, r.created_ts, ingestion order)``; none gives nulls.

One pass per view: the entity rows and the view's rows go into one union, partitioned by the
join keys and sorted by ``(time, kind, created (null first), ingestion order)`` where a
feature row's kind (0) sorts before an entity row's (1) at the same time. The last feature
row at or before each entity row in that order (``last(..., ignorenulls)`` over the running
frame) is exactly the rule's row: every feature row with ``ts <= t`` precedes the entity row
and the greatest of them comes last. The ttl is applied after the match, as on DuckDB: when
the matched row is older than ``t - ttl``, every other candidate is older too.

Entity rows carry their position ``__hw_row``; the result of :func:`join_view` is one row
per entity row: the position and the view's feature columns ``__hw_v{index}_{j}``.
Null keys and null times never match (a feature row with a null key is dropped; an entity
row with a null time sorts before every feature row).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from headwater.offline.pit_join import feature_column
from headwater.offline.spark_rows import CREATED, TS, of_entity_keys, value_column
from headwater.offline.spark_sources import SEQ, col
from headwater.offline.sql_names import ROW, TIME

_KIND = "__hw_kind"
_ORDER_TIME = "__hw_ot"
_PICKED = "__hw_p"


def key_type(arrow_class: str | None) -> str:
    """The Spark type both sides' keys are compared as: ``long`` or ``string``."""
    return "long" if arrow_class == "integer" else "string"


def join_view(entity: Any, rows: Any, *, keys: Sequence[str], key_types: Sequence[str],
              width: int, index: int, ttl: timedelta | None,
              entity_range: tuple[datetime | None, datetime | None],
              few_keys: bool = False) -> Any:
    """The point-in-time join of one view (``rows`` from
    :func:`~headwater.offline.spark_rows.view_rows` with ``width`` value columns) to the
    entity rows (``__hw_row``, keys, ``__hw_t`` as a TIMESTAMP). With ``few_keys`` only
    rows of the entity rows' keys take part
    (:func:`~headwater.offline.spark_rows.of_entity_keys`)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    earliest, latest = entity_range
    casts = [col(k).cast(t).alias(k) for k, t in zip(keys, key_types, strict=True)]
    # only rows some entity row can use: none after the latest entity time and, with a
    # ttl, none older than the earliest entity time minus the ttl (as on DuckDB)
    usable = rows.where(F.lit(False) if latest is None else col(TS) <= F.lit(latest))
    if ttl is not None and earliest is not None and (
            earliest - datetime.min.replace(tzinfo=earliest.tzinfo) > ttl):
        usable = usable.where(col(TS) >= F.lit(earliest - ttl))
    for k in keys:
        usable = usable.where(col(k).isNotNull())
    payload = F.struct(col(TS).alias("ts"),
                       *(col(value_column(j)).alias(f"c{j}") for j in range(width)))
    features = usable.select(*casts, col(TS).alias(_ORDER_TIME), F.lit(0).alias(_KIND),
                             col(CREATED), col(SEQ), payload.alias(_PICKED))
    if few_keys:
        features = of_entity_keys(features, keys, entity.select(*casts))
    probes = entity.select(*casts, col(TIME).alias(_ORDER_TIME), F.lit(1).alias(_KIND),
                           col(ROW))
    union = features.unionByName(probes, allowMissingColumns=True)
    window = Window.partitionBy(*(col(k) for k in keys)).orderBy(
        col(_ORDER_TIME).asc_nulls_first(), col(_KIND), col(CREATED).asc_nulls_first(),
        col(SEQ)).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    picked = F.last(col(_PICKED), ignorenulls=True).over(window)
    matched = union.select(col(ROW), col(_KIND), col(_ORDER_TIME), picked.alias(_PICKED)).where(
        col(_KIND) == 1)
    p = F.col(_PICKED)
    values = []
    for j in range(width):
        value = p[f"c{j}"]
        if ttl is not None:
            fresh = F.unix_micros(p["ts"]) >= (F.unix_micros(col(_ORDER_TIME)) -
                                               F.lit(ttl // timedelta(microseconds=1)))
            value = F.when(fresh, value)
        values.append(value.alias(feature_column(index, j)))
    return matched.select(col(ROW), *values)
