"""Offline engines: point-in-time correct training frames over batch data."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater.config import Settings
    from headwater.offline.base import OfflineEngine


def open_engine(settings: Settings) -> OfflineEngine:
    """The offline engine named in the settings, imported only now."""
    from headwater.offline.duckdb import DuckDBEngine

    return DuckDBEngine(settings)
