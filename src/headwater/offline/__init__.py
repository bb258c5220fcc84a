"""Offline engines: point-in-time correct training frames over batch data."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater.config import Settings
    from headwater.offline.base import OfflineEngine


def open_engine(settings: Settings) -> OfflineEngine:
    """The offline engine named in the settings (``offline.engine``), imported only now:
    DuckDB (the default) or Spark, which needs the ``spark`` extra."""
    if settings.offline.engine == "spark":
        from headwater.offline.spark import SparkEngine

        return SparkEngine(settings)
    from headwater.offline.duckdb import DuckDBEngine

    return DuckDBEngine(settings)
