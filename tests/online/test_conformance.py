"""The public online store conformance suite, on every backend (see conftest.py)."""

from __future__ import annotations

from headwater.testing.online import OnlineStoreSuite


class TestOnlineStoreConformance(OnlineStoreSuite):
    """SQLite and the real Redis, through ``online_store_factory``."""
