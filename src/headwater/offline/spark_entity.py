"""The entity frame on Spark: Arrow-like frames and Spark DataFrames as join input.

An Arrow-like entity frame (pandas, polars, Arrow) sends Spark only its narrow table (row
position, keys, time: :func:`~headwater.offline.entity_frame.narrow_table`) with the time
already a UTC instant (:func:`normalized_times`; strings are left for Spark to parse and
check), and its time range is computed on the driver (:func:`arrow_range`). A Spark
DataFrame stays in Spark (:func:`spark_range`). Spark failures on the data become a
DataError (:func:`spark_errors`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from headwater.errors import DataError
from headwater.offline.spark_sources import col
from headwater.offline.sql_names import TIME
from headwater.offline.timestamps import TimeKind
from headwater.types import from_micros

if TYPE_CHECKING:
    import pyarrow as pa

_T = TypeVar("_T")


def is_spark_frame(value: Any) -> bool:
    import sys

    sql = sys.modules.get("pyspark.sql")
    return sql is not None and isinstance(value, sql.DataFrame)


def arrow_schema(frame: Any) -> pa.Schema:
    """The Arrow schema of a Spark DataFrame (timestamps as UTC instants)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(frame.schema, timezone="UTC")


def normalized_times(narrow: pa.Table, kind: TimeKind) -> pa.Table:
    """The narrow entity table with its time as ``timestamp[us, UTC]`` (naive read as UTC,
    nanoseconds truncated, dates at midnight); strings stay for Spark to parse."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind is TimeKind.STRING:
        return narrow
    time = narrow.column(TIME)
    if kind is TimeKind.DATE:
        time = pc.cast(time.cast(pa.date32()), pa.timestamp("us"))
    if pa.types.is_timestamp(time.type) and time.type.tz is None:
        time = time.cast(pa.timestamp(time.type.unit)).cast(
            pa.timestamp(time.type.unit, "UTC"))
    time = time.cast(pa.timestamp("us", "UTC"), safe=False)
    return narrow.set_column(narrow.schema.get_field_index(TIME), TIME, time)


def arrow_range(narrow: pa.Table) -> tuple[datetime | None, datetime | None]:
    import pyarrow.compute as pc

    bounds = pc.min_max(narrow.column(TIME))
    return bounds["min"].as_py(), bounds["max"].as_py()


def spark_range(rows: Any) -> tuple[datetime | None, datetime | None]:
    from pyspark.sql import functions as F

    micros = F.unix_micros(col(TIME))
    row = spark_errors(lambda: rows.agg(F.min(micros), F.max(micros)).collect()[0])
    return (None if row[0] is None else from_micros(row[0]),
            None if row[1] is None else from_micros(row[1]))


def spark_errors(call: Callable[[], _T]) -> _T:
    """Run a Spark action, turning Spark's failures on the data into a DataError."""
    from pyspark.errors import PySparkException

    try:
        return call()
    except PySparkException as exc:
        raise DataError(f"the Spark offline engine failed on the data ({first_line(exc)}). Fix: "
                        "check the sources' time, key and value columns") from exc


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
