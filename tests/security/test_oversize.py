"""Oversized requests are refused: a body past the limit is 413 on every endpoint (the
FastAPI routes too), too many entities or rows is 422 naming the limit, and deeply nested
or huge JSON values are 4xx, never 5xx or a hang. The dashboard's sign-in form has its own
8 KB limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.serving.edge import MAX_BODY_BYTES
from headwater.serving.requests import MAX_ENTITIES, MAX_PUSH_ROWS
from headwater.ui.app import MAX_LOGIN_BYTES, create_ui
from tests.security.conftest import Served, ring

ENDPOINTS = ["/features", "/predict", "/push"]
FEATURES = ["customer_stats:sessions_7d"]


def _chunks(total: int) -> Iterator[bytes]:
    """A streamed body (no content-length) of ``total`` bytes, in 1 MiB chunks."""
    chunk = b" " * (1024 * 1024)
    sent = 0
    while sent < total:
        yield chunk[:total - sent]
        sent += len(chunk)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_body_over_the_limit_is_413_on_every_endpoint(client: TestClient, path: str) -> None:
    answer = client.post(path, content=b"x" * (MAX_BODY_BYTES + 1),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["field"] == "body" and str(MAX_BODY_BYTES) in error["message"]
    assert "Fix:" in error["message"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_streamed_body_without_length_is_cut_at_the_limit(client: TestClient,
                                                            path: str) -> None:
    answer = client.post(path, content=_chunks(MAX_BODY_BYTES + 10),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 413, answer.text


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_declared_length_over_the_limit_is_refused_before_reading(client: TestClient,
                                                                    path: str) -> None:
    # the header alone decides: the few bytes sent are never parsed
    answer = client.post(path, content=b"{}", headers={
        "content-type": "application/json", "content-length": str(MAX_BODY_BYTES + 1)})
    assert answer.status_code == 413, answer.text


def test_a_push_under_the_limit_still_reaches_the_route(client: TestClient,
                                                        served: Served) -> None:
    rows = [{"customer_id": 999_001, "ts": "2024-01-01T00:00:00Z"}]
    answer = client.post("/push", json={"view": "customer_stats", "rows": rows})
    assert answer.status_code == 422, answer.text  # the route read the body: columns missing
    assert "missing column" in answer.json()["error"]["message"]


@pytest.mark.parametrize("case", [
    ("/features", {"features": FEATURES}, "entities", MAX_ENTITIES),
    ("/predict", {"model": "churn@production"}, "entities", MAX_ENTITIES),
    ("/push", {"view": "customer_stats"}, "rows", MAX_PUSH_ROWS),
], ids=["features", "predict", "push"])
def test_too_many_rows_is_422_naming_the_limit(
        client: TestClient, served: Served,
        case: tuple[str, dict[str, Any], str, int]) -> None:
    path, body, field, limit = case
    rows = [{"customer_id": 1}] * (limit + 1)
    before = served.store.get_online_features(FEATURES, [{"customer_id": 1}]).to_dict()
    answer = client.post(path, json={**body, field: rows})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field
    assert str(limit) in error["message"] and "split" in error["message"]
    after = served.store.get_online_features(FEATURES, [{"customer_id": 1}]).to_dict()
    assert after == before
    at_limit = client.post(path, json={**body, field: rows[:limit]})
    assert at_limit.status_code != 422 or str(limit) not in at_limit.text


def test_a_predict_request_list_over_the_limit_is_422(client: TestClient) -> None:
    entities = [{"customer_id": 1}]
    answer = client.post("/predict", json={"model": "churn@production", "entities": entities,
                                           "request": [{}] * (MAX_ENTITIES + 1)})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "request"


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("body", [
    b"[" * 200_000 + b"]" * 200_000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"view": "' + b"v" * (8 * 1024 * 1024) + b'", "rows": []}',
    b'{"features": ["' + b"x" * 1_000_000 + b'"], "entities": [{"customer_id": 1}]}',
    b'{"entities": [{"customer_id": ' + b"9" * 100_000 + b"}]}",
    b'{"model": "churn:' + b"9" * 10_000 + b'", "entities": [{"customer_id": 1}]}',
], ids=["nested-lists", "nested-objects", "8MB-string", "1MB-feature", "100k-digits",
        "10k-digit-version"])
def test_deep_or_huge_json_values_are_4xx(client: TestClient, path: str, body: bytes) -> None:
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    assert 400 <= answer.status_code < 500, answer.text[:300]
    assert answer.json()["error"]["message"]


def test_the_dashboard_sign_in_form_has_a_limit(served: Served) -> None:
    with TestClient(create_ui(served.store, api_keys=ring(served)),
                    follow_redirects=False) as ui:
        answer = ui.post("/login", content=b"key=" + b"k" * MAX_LOGIN_BYTES,
                         headers={"content-type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 413
        assert "too large" in answer.text
        small = ui.post("/login", data={"key": served.key, "next": "/models"})
        assert small.status_code == 303 and small.headers["location"] == "/models"
