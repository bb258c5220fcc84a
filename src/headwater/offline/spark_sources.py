"""Reading sources into Spark: rows, ingestion order and times as UTC instants.

* **Parquet** FileSources are read by Spark itself, on the executors. The files are those
  of :meth:`~headwater.offline.source_reader.SourceReader.files` (the same folder, glob and
  push-file order as DuckDB); the ingestion order of a row is ``file_index << 40 |
  row_in_file`` from Spark's ``_metadata.file_path`` and ``_metadata.row_index``, exactly the
  ``__hw_seq`` of the DuckDB engine.
* **CSV** FileSources and **SQLSources** are read on the driver by the DuckDB reader (the
  same type inference, CSV time columns as text, PostgreSQL through ADBC) and handed to
  Spark as Arrow, with the row position as ingestion order. That keeps both engines'
  results identical, but these sources must fit in the driver's memory: at scale, export
  them to Parquet.

Schemas (:meth:`SparkSources.schema`) come from the DuckDB reader too (metadata only), so
the entity frame and key checks and their messages are the same on both engines.

Time columns become Spark ``TIMESTAMP`` (instants; the session runs in UTC) by the rules of
:mod:`~headwater.offline.timestamps`: zoned timestamps as they are, naive ones read as UTC,
dates at midnight UTC, Parquet nanoseconds truncated to microseconds, ISO-8601 strings parsed
by Spark's cast, after :func:`check_strings` refused unparseable values and columns mixing
zoned and naive values with DuckDB's messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote as quote_path

from headwater.config import Settings
from headwater.definitions import FileSource, Source
from headwater.errors import DataError
from headwater.offline.events import ROW_BITS
from headwater.offline.source_reader import SourceReader
from headwater.offline.sql_names import quote
from headwater.offline.timestamps import ZONE_SUFFIX, TimeKind, time_kind

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

SEQ = "__hw_seq"
_FILE_LIMIT = 1 << (63 - ROW_BITS)


def col(name: str) -> Any:
    """A Spark column by its exact name (dots and backticks included)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


@dataclass(frozen=True)
class SparkScan:
    """A source as a Spark DataFrame: the wanted columns as stored, plus ``__hw_seq`` (the
    ingestion order, int64); ``schema`` is the Arrow schema of the stored columns."""

    frame: Any  # pyspark.sql.DataFrame
    schema: pa.Schema


class SparkSources:
    """Reads sources into a Spark session, resolving paths and URLs from ``settings``."""

    def __init__(self, settings: Settings, spark: Any) -> None:
        import duckdb

        self._reader = SourceReader(settings)
        self._spark = spark
        self._db = duckdb.connect(":memory:", config={
            "autoinstall_known_extensions": False, "autoload_known_extensions": False,
            "preserve_insertion_order": True})
        self._db.sql("SET GLOBAL TimeZone = 'UTC'")

    def close(self) -> None:
        """Close the driver-side DuckDB database used for schemas, CSV and SQL sources."""
        self._db.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = self._db.cursor()
        cursor.sql("SET TimeZone = 'UTC'")
        return cursor

    def schema(self, source: Source) -> pa.Schema:
        """The Arrow schema of the source's rows, as the DuckDB engine reports it."""
        cursor = self._cursor()
        try:
            return self._reader.schema(cursor, source)
        finally:
            cursor.close()

    def scan(self, source: Source, columns: Sequence[str] | None = None) -> SparkScan:
        """The source's rows (``columns`` only when given) with their ingestion order."""
        schema = self.schema(source)
        wanted = list(dict.fromkeys(schema.names if columns is None else columns))
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise DataError(f"{source.label()}: no column(s) {missing}; its columns are "
                            f"{schema.names}. Fix: add them to the source, or correct the "
                            "names")
        if isinstance(source, FileSource) and source.format == "parquet" and SEQ not in wanted:
            return SparkScan(self._parquet(source, wanted), schema)
        return self._via_duckdb(source, schema, wanted)

    def stored(self, source: Source) -> Any:
        """Every column of the source as stored (for entity queries naming it)."""
        frame = self.scan(source).frame
        return frame.drop(SEQ)

    def _parquet(self, source: FileSource, columns: list[str]) -> Any:
        from pyspark.errors import PySparkException
        from pyspark.sql import functions as F

        files = self._reader.files(source)
        index: dict[str, int] = {}
        for position, path in enumerate(files):
            for form in (path, quote_path(path, safe="/"), quote_path(path, safe="/=:,")):
                index[f"file:{form}"] = position
                index[f"file://{form}"] = position
                index[form] = position
        try:
            frame = self._spark.read.option("recursiveFileLookup", "false").parquet(*files)
        except PySparkException as exc:
            raise _unreadable(source, exc) from exc
        lookup = F.create_map(*(F.lit(x) for item in index.items() for x in item))
        known = lookup[F.col("_metadata.file_path")]
        # an unknown path form would lose the ingestion order: fail loudly instead
        file_index = F.coalesce(known, F.raise_error(F.concat(
            F.lit("headwater: cannot place file "), F.col("_metadata.file_path"),
            F.lit(" in the ingestion order; please report this with the path"))))
        if len(files) >= _FILE_LIMIT:
            raise DataError(f"{source.label()}: more than {_FILE_LIMIT} files: the ingestion "
                            "order does not fit 64 bits. Fix: compact the source into fewer "
                            "files")
        seq = F.shiftleft(file_index.cast("long"), ROW_BITS).bitwiseOR(
            F.col("_metadata.row_index"))
        return frame.select(*(col(c) for c in columns), seq.alias(SEQ))

    def _via_duckdb(self, source: Source, schema: pa.Schema, columns: list[str]) -> SparkScan:
        """The rows as the DuckDB engine copies them (CSV time columns as text), with the
        schema of that copy."""
        import pyarrow as pa

        cursor = self._cursor()
        try:
            scan = self._reader.scan(cursor, source, schema, columns, until=None,
                                     tag="__hw_x0")
            select = ", ".join(quote(c) for c in columns)
            order = ", ".join(scan.order)
            table = cursor.sql(f"SELECT {select}, CAST(row_number() OVER (ORDER BY {order}) "
                               f"AS BIGINT) - 1 AS {SEQ} FROM {scan.from_sql} ORDER BY {order}",
                               params=scan.params).to_arrow_table()
        finally:
            cursor.close()
        fields = []
        for field in table.schema:  # Spark takes neither views nor large strings
            kind = field.type
            if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
                kind = pa.string()
            fields.append(pa.field(field.name, kind))
        copied = table.schema.remove(table.schema.get_field_index(SEQ))
        return SparkScan(to_spark_frame(self._spark, table.cast(pa.schema(fields))), copied)


def to_spark_frame(spark: Any, table: pa.Table) -> Any:
    """An Arrow table as a Spark DataFrame (timestamps as microseconds, which Spark keeps).
    A table without rows still gives a frame of its schema."""
    import pyarrow as pa

    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            kind = pa.timestamp("us", kind.tz)
        fields.append(pa.field(field.name, kind))
    schema = pa.schema(fields)
    if schema != table.schema:
        table = table.cast(schema, safe=False)
    return spark.createDataFrame(table)


def instant(frame: Any, column: str, arrow_type: pa.DataType, *, owner: str,
            label: str | None = None) -> Any:
    """A Spark expression giving ``column`` of ``frame`` as a UTC ``TIMESTAMP``; a string
    column is checked first (:func:`check_strings`). DataError when it cannot hold times;
    messages name the column ``label`` (default: ``column``)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    kind = time_kind(arrow_type)
    spark_type = frame.schema[column].dataType
    value = col(column)
    if kind is None:
        raise DataError(f"{owner}: time column '{label or column}' has type {arrow_type}. "
                        "Fix: use a timestamp, date or ISO-8601 string column")
    if kind is TimeKind.STRING:
        check_strings(frame, column, owner=owner, label=label)
        return value.try_cast("timestamp")
    if isinstance(spark_type, T.LongType | T.IntegerType):  # Parquet nanoseconds as int64
        return F.timestamp_micros(F.floor(value / F.lit(1000)).cast("long"))
    if isinstance(spark_type, T.TimestampType):
        return value
    return value.cast("timestamp")  # naive (read as UTC: the session zone) or a date


def check_strings(frame: Any, column: str, *, owner: str, label: str | None = None) -> None:
    """DuckDB's :func:`~headwater.offline.timestamps.check_strings`, in one Spark pass."""
    from pyspark.sql import functions as F

    value = col(column).cast("string")
    zoned = value.rlike(ZONE_SUFFIX)
    row = frame.where(value.isNotNull()).agg(
        F.first(F.when(value.try_cast("timestamp").isNull(), value), ignorenulls=True),
        F.first(F.when(zoned, value), ignorenulls=True),
        F.first(F.when(~zoned, value), ignorenulls=True),
    ).collect()[0]
    bad, with_zone, naive = row[0], row[1], row[2]
    column = label or column
    if bad is not None:
        raise DataError(
            f"{owner}: time column '{column}' holds a value that is not an ISO-8601 "
            f"timestamp: {bad!r}. Fix: convert the column to a timestamp type, or write "
            "values such as '2024-01-01T12:00:00Z' or '2024-01-01 12:00:00'")
    if with_zone is not None and naive is not None:
        raise DataError(
            f"{owner}: time column '{column}' mixes values with a time zone ({with_zone!r}) "
            f"and values without one ({naive!r}). Fix: give every value a zone (e.g. a 'Z' "
            "suffix for UTC) or none (naive values are read as UTC)")


def _unreadable(source: FileSource, exc: Exception) -> DataError:
    text = str(exc).strip()
    detail = text.splitlines()[0] if text else type(exc).__name__
    return DataError(
        f"{source.label()}: cannot read '{source.path}' as {source.format} ({detail}). Fix: "
        f"check that every file under that path is valid {source.format} with the same columns"
    )
