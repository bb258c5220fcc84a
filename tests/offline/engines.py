"""Both offline engines for the conformance suites: DuckDB, and Spark in local mode.

Spark starts once per test process (about 15 s): :func:`spark_session` is that one session,
shared by every Spark engine the tests open (an engine borrows it and leaves it running on
``close``); it stops when the process exits.
"""

from __future__ import annotations

import atexit
import functools
from pathlib import Path
from typing import Any

from headwater.config import parse_settings
from headwater.offline.base import OfflineEngine

ENGINES = ("duckdb", "spark")
SPARK_CONF = {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"}


@functools.cache
def spark_session() -> Any:
    """The test process's one SparkSession (local[2], few shuffle partitions)."""
    from headwater.offline.spark_session import builder

    settings = parse_settings({"project": "tests", "offline": {
        "engine": "spark", "master": "local[2]", "spark_conf": SPARK_CONF}}, Path("."))
    spark = builder(settings.offline).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    atexit.register(spark.stop)
    return spark


def open_engine(kind: str, repo: Path, project: str = "offline_test",
                **options: Any) -> OfflineEngine:
    """An engine of ``kind`` over ``repo``; ``options`` go to its constructor."""
    if kind == "spark":
        from headwater.offline.spark import SparkEngine

        settings = parse_settings({"project": project, "offline": {
            "engine": "spark", "master": "local[2]", "spark_conf": SPARK_CONF}}, repo)
        return SparkEngine(settings, spark=spark_session(), **options)
    from headwater.offline.duckdb import DuckDBEngine

    return DuckDBEngine(parse_settings({"project": project}, repo), **options)
