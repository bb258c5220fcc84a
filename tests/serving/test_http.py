"""The feature server in process: /features, /push, /health, /metrics, the schema, errors."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.serving.requests import parse_features, parse_push
from headwater.serving.schemas import FeaturesRequest, PushRequest
from tests.streaming.conftest import DRIVER, T0

FEATURES = ["globbed:conv_rate", "globbed:trips"]


def post_features(client: TestClient, **body: Any) -> Any:
    return client.post("/features", json={"features": FEATURES,
                                          "entities": [{"driver_id": 1001}], **body})


def test_features_returns_columns_and_per_view_metadata(client: TestClient) -> None:
    answer = client.post("/features", json={
        "features": [*FEATURES, "stats:conv_rate"],
        "entities": [{"driver_id": 1001}, {"driver_id": 1099}], "full_feature_names": True})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "metadata": {"entity_names": ["driver_id"],
                     "feature_names": ["globbed__conv_rate", "globbed__trips",
                                       "stats__conv_rate"]},
        "results": {"driver_id": [1001, 1099], "globbed__conv_rate": [0.5, None],
                    "globbed__trips": [5, None], "stats__conv_rate": [None, None]},
        "views": {
            "globbed": {"event_timestamps": ["2024-01-01T00:00:00Z", None],
                        "statuses": ["PRESENT", "MISSING"]},
            # the stats view has a one-day ttl: its value from 2024 has expired by now
            "stats": {"event_timestamps": ["2024-01-01T00:00:00Z", None],
                      "statuses": ["EXPIRED", "MISSING"]},
        },
    }


def test_a_feature_service_selects_its_features(client: TestClient) -> None:
    answer = client.post("/features", json={"feature_service": "driver_model",
                                            "entities": [{"driver_id": 1002}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"] == {"driver_id": [1002], "conv_rate": [0.6], "trips": [6]}


@pytest.mark.parametrize(("body", "status", "kind", "field", "words"), [
    ({"features": ["nope:conv_rate"]}, 404, "not_found", None, "no feature_view named 'nope'"),
    ({"features": ["globbed:speed"]}, 404, "not_found", None, "has no feature(s) ['speed']"),
    ({"features": None, "feature_service": "nope"}, 404, "not_found", None, "'nope'"),
    ({"features": ["conv_rate"]}, 422, "definition_error", "features", "view:feature"),
    ({"entities": [{"driver": 1}]}, 422, "data_error", "entities", "has no 'driver_id'"),
    ({"entities": [{"driver_id": "1001"}]}, 422, "data_error", "entities", "int"),
])
def test_unknown_names_are_404_and_bad_requests_422(
        client: TestClient, *, body: dict[str, Any], status: int, kind: str,
        field: str | None, words: str) -> None:
    payload = {"features": FEATURES, "entities": [{"driver_id": 1001}], **body}
    answer = client.post("/features", json={k: v for k, v in payload.items()
                                            if v is not None})
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["field"]) == (kind, field)
    assert words in error["message"]


@pytest.mark.parametrize(("content", "field"), [
    (b"{not json", "body"),
    (b"[1, 2]", "body"),
    (b'{"features": ["globbed:trips"]}', "entities"),
    (b'{"features": ["globbed:trips"], "entities": []}', "entities"),
    (b'{"features": ["globbed:trips"], "entities": {"driver_id": 1}}', "entities"),
    (b'{"features": ["globbed:trips"], "entities": [{"driver_id": 1}, 7]}', "entities[1]"),
    (b'{"entities": [{"driver_id": 1}]}', "features"),
    (b'{"features": [], "entities": [{"driver_id": 1}]}', "features"),
    (b'{"features": ["globbed:trips", 3], "entities": [{"driver_id": 1}]}', "features[1]"),
    (b'{"features": ["a:b"], "feature_service": "s", "entities": [{"driver_id": 1}]}',
     "features"),
    (b'{"feature_service": 5, "entities": [{"driver_id": 1}]}', "feature_service"),
    (b'{"features": ["globbed:trips"], "entities": [{"driver_id": 1}], '
     b'"full_feature_names": "yes"}', "full_feature_names"),
    (b'{"features": ["globbed:trips"], "entities": [{"driver_id": 1}], "limit": 1}',
     "limit"),
])
def test_malformed_features_bodies_are_422_naming_the_field(
        client: TestClient, content: bytes, field: str) -> None:
    answer = client.post("/features", content=content)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["field"]) == ("invalid_request", field)
    assert f"field '{field}'" in error["message"]


def test_features_takes_only_post(client: TestClient) -> None:
    answer = client.get("/features")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["error"]["type"] == "method_not_allowed"


def test_push_online_is_served_and_offline_is_a_file_in_the_repo(
        client: TestClient, served_repo: Path) -> None:
    at = (T0 + timedelta(hours=3)).isoformat()
    pushed = client.post("/push", json={"view": "globbed", "rows": [
        {"driver_id": 1001, "event_timestamp": at, "conv_rate": 0.75, "trips": 75}]})
    assert pushed.status_code == 200, pushed.text
    assert pushed.json() == {"view": "globbed", "to": "online", "rows": 1, "online_stored": 1,
                             "offline_file": None}
    assert post_features(client).json()["results"]["conv_rate"] == [0.75]

    offline = client.post("/push", json={"view": "globbed", "to": "offline", "rows": [
        {"driver_id": 1003, "event_timestamp": at, "conv_rate": 0.5, "trips": 1,
         "unused": "u"}]})  # offline pushes carry every column of the source's files
    assert offline.status_code == 200, offline.text
    path = offline.json()["offline_file"]
    assert re.fullmatch(r"data/globbed/push-\d{19}-[0-9a-f]{8}\.parquet", path)
    assert (served_repo / path).is_file()


@pytest.mark.parametrize(("body", "status", "kind", "field", "words"), [
    ({"view": "nope", "rows": []}, 404, "not_found", None, "'nope'"),
    ({"view": "globbed", "rows": [{"driver_id": 1}]}, 422, "data_error", "rows",
     "missing column(s)"),
    ({"view": "globbed", "rows": [{"driver_id": 1, "event_timestamp": "2024-01-01",
                                   "conv_rate": "high", "trips": 1}]},
     422, "data_error", "rows", "feature 'conv_rate' is declared Float64"),
    ({"view": "single", "rows": [], "to": "offline"}, 422, "definition_error", "source",
     "folder FileSource"),
    ({"view": "globbed", "rows": [], "to": "disk"}, 422, "invalid_request", "to", "'disk'"),
    ({"view": "globbed", "rows": [3]}, 422, "invalid_request", "rows[0]", "object"),
    ({"rows": []}, 422, "invalid_request", "view", "feature view name"),
])
def test_push_errors(client: TestClient, *, body: dict[str, Any], status: int, kind: str,
                     field: str | None, words: str) -> None:
    answer = client.post("/push", json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["field"]) == (kind, field)
    assert words in error["message"]


def test_health_reports_each_dependency(client: TestClient) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "checks": {"online_store": "ok", "registry": "ok"}}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text, 0 when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{want}}}" if want else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_latency_and_rows(client: TestClient) -> None:
    for _ in range(3):
        assert post_features(client).status_code == 200
    client.post("/features", json={"features": FEATURES,
                                   "entities": [{"driver_id": 1}, {"driver_id": 2}]})
    assert client.post("/features", content=b"{").status_code == 422
    client.get("/nowhere")
    text = client.get("/metrics").text
    count = "headwater_http_requests_total"
    assert metric(text, count, endpoint="/features", method="POST", status="200") == 4
    assert metric(text, count, endpoint="/features", method="POST", status="422") == 1
    assert metric(text, count, endpoint="other", method="GET", status="404") == 1
    assert metric(text, "headwater_online_rows_read_total") == 5
    latency = "headwater_http_request_duration_seconds"
    assert metric(text, f"{latency}_count", endpoint="/features", status="200") == 4
    assert metric(text, f"{latency}_bucket", endpoint="/features", status="200",
                  le="+Inf") == 4
    assert metric(text, f"{latency}_sum", endpoint="/features", status="200") > 0
    assert "# TYPE headwater_http_request_duration_seconds histogram" in text
    again = client.get("/metrics").text  # the first scrape is counted too
    assert metric(again, count, endpoint="/metrics", method="GET", status="200") == 1


def test_push_rows_are_counted(client: TestClient) -> None:
    rows = [{"driver_id": 1, "event_timestamp": "2024-01-01T00:00:00Z", "conv_rate": 0.1,
             "trips": 1}] * 3
    assert client.post("/push", json={"view": "globbed", "rows": rows}).status_code == 200
    text = client.get("/metrics").text
    assert metric(text, "headwater_push_rows_total", view="globbed", to="online") == 3


def test_the_openapi_schema_lists_endpoints_models_and_auth(client: TestClient) -> None:
    schema = client.get("/openapi.json", headers={"Authorization": ""}).json()
    assert {"/features", "/push", "/health", "/metrics"} <= set(schema["paths"])
    assert set(schema["paths"]["/features"]) == {"post"}
    operation = schema["paths"]["/features"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FeaturesRequest"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FeaturesResponse"}
    assert {"401", "404", "422", "503"} <= set(operation["responses"])
    components = schema["components"]["schemas"]
    for name in ("FeaturesRequest", "FeaturesResponse", "PushRequest", "PushResponse",
                 "HealthResponse", "ErrorResponse", "ViewStatuses"):
        assert name in components
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert client.get("/docs", headers={"Authorization": ""}).status_code == 200


def test_the_documented_models_match_what_the_parser_accepts() -> None:
    for model, parse in ((FeaturesRequest, parse_features), (PushRequest, parse_push)):
        example = model.model_json_schema()["examples"][0]
        model.model_validate(example)
        parse(json.dumps(example).encode())
    from headwater.serving import requests

    assert set(FeaturesRequest.model_fields) == requests._FEATURES_FIELDS
    assert set(PushRequest.model_fields) == requests._PUSH_FIELDS


def test_a_view_applied_while_serving_is_served_at_once(client: TestClient,
                                                        served_repo: Path) -> None:
    with hw.FeatureStore(served_repo) as other:  # another process's apply, in effect
        other.apply([hw.FeatureView("copy", entities=[DRIVER],
                                    source=hw.FileSource("data/globbed/", "event_timestamp"))])
    # the inferred schema has every other column as a feature, 'created' included
    rows = [{"driver_id": 1, "event_timestamp": "2024-01-01T00:00:00Z", "conv_rate": 0.1,
             "trips": 1, "unused": "u", "created": "2024-01-01T00:00:00Z"}]
    pushed = client.post("/push", json={"view": "copy", "rows": rows})
    assert pushed.status_code == 200, pushed.text
    answer = client.post("/features", json={"features": ["copy:unused"],
                                            "entities": [{"driver_id": 1}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"]["unused"] == ["u"]
