"""The Spark engine's session: started from ``headwater.yaml``, or borrowed.

``offline.master`` (default ``local[*]``) and ``offline.spark_conf`` configure the session
builder. Whatever the configuration says, sessions run with ``spark.sql.session.timeZone=UTC``
(naive times are UTC, as on DuckDB), the Spark UI off, and nothing downloaded at run time
(``spark.jars.packages`` is refused in the configuration).

When a SparkSession is already active in the process (a notebook on a cluster, a test
suite), the engine borrows its SparkContext instead of starting one, and ``close()`` leaves
it running: the engine stops only what it started. Either way the engine works in its own
:meth:`~pyspark.sql.SparkSession.newSession` (same cluster, its own SQL settings and temporary
views), so its settings never leak into the user's session.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError

if TYPE_CHECKING:
    from headwater.config import OfflineSettings

FIXED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
"""Settings every session the engine starts has, whatever ``spark_conf`` says."""

SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # Parquet nanosecond timestamps (pandas writes them) come as int64 nanoseconds, which
    # the reader truncates to microseconds as DuckDB does; Spark refuses them otherwise
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.ansi.enabled": "true",
}
"""Settings of the engine's own session (runtime SQL settings)."""


@dataclass(frozen=True)
class EngineSession:
    """The engine's session and whether the engine started the SparkContext under it."""

    spark: Any  # pyspark.sql.SparkSession
    owned: bool

    def stop(self) -> None:
        """Stop the SparkContext if the engine started it; a borrowed one keeps running."""
        if self.owned:
            self.spark.stop()


def import_pyspark() -> Any:
    """The ``pyspark.sql`` module, or ConfigError naming the extra to install."""
    try:
        import pyspark.sql
    except ImportError as exc:
        raise ConfigError(
            "offline engine 'spark' needs PySpark, which is not installed. Fix: pip install "
            "'headwater[spark]' (and Java 17+), or set 'offline: {engine: duckdb}' in "
            "headwater.yaml") from exc
    return pyspark.sql


def builder(settings: OfflineSettings) -> Any:
    """A SparkSession builder configured from ``settings`` (see the module docstring)."""
    sql = import_pyspark()
    build = sql.SparkSession.builder.master(settings.master or "local[*]").appName("headwater")
    # Spark's default warehouse is ./spark-warehouse, made in whatever folder the process
    # runs in; the engine creates no tables there, so keep it out of the user's folder
    warehouse = Path(settings.temp_directory or tempfile.gettempdir()) / "spark-warehouse"
    for key, value in {"spark.sql.warehouse.dir": str(warehouse), **settings.spark_conf,
                       **FIXED_CONF}.items():
        build = build.config(key, value)
    return build


def open_session(settings: OfflineSettings, spark: Any = None) -> EngineSession:
    """The engine's session: a new session on ``spark`` when given, else on the active
    session, else on one started from ``settings``."""
    sql = import_pyspark()
    owned = False
    base = spark if spark is not None else (
        sql.SparkSession.getActiveSession() or sql.SparkSession._instantiatedSession)
    if base is None:
        base = builder(settings).getOrCreate()
        owned = True
    session = base.newSession()
    for key, value in SESSION_CONF.items():
        session.conf.set(key, value)
    return EngineSession(session, owned)
