"""The dashboard tests' shared fixture: the app over the module's ``store`` (auth off)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.ui.app import create_ui


@pytest.fixture(scope="module")
def client(store: hw.FeatureStore) -> TestClient:
    """A client of the dashboard over the test module's ``store`` fixture."""
    return TestClient(create_ui(store, api_keys=None))
