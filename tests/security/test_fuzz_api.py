"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, and every answer
conforms to the schema (a documented status code, the documented error body).

The schema is the one the server serves at ``/openapi.json``; every operation is fuzzed
with data that fits the schema and with data that does not, a bounded, derandomized number
of examples each, so CI sees the same cases every run. The dashboard's routes get lighter
fuzzing (Hypothesis): the sign-in form and the pages' query parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from headwater.ui.app import create_ui
from tests.security.conftest import Served, ring

EXAMPLES = 40
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
OPERATIONS = ["POST /features", "POST /predict", "POST /push", "GET /health", "GET /metrics"]


@pytest.fixture(scope="module")
def schema_source(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from headwater.inference.log import PredictionLog
    from headwater.serving.http import create_app

    log = PredictionLog(tmp_path_factory.mktemp("schema-log"))
    with TestClient(create_app(served.store, api_keys=ring(served),
                               prediction_log=log)) as plain:
        answer = plain.get("/openapi.json")  # public: no key
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def test_the_schema_documents_every_endpoint(schema_source: dict[str, Any]) -> None:
    documented = {f"{method.upper()} {path}" for path, ops in schema_source["paths"].items()
                  for method in ops}
    assert set(OPERATIONS) <= documented
    assert "bearer" in schema_source["components"]["securitySchemes"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=str)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_5xx_and_answers_match_the_schema(schema_source: dict[str, Any],
                                             client: TestClient, served: Served,
                                             operation: str,
                                             mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_dict(schema_source)
    method, path = operation.split(" ")
    api_operation = schema[path][method]
    seen: list[int] = []

    @FUZZ
    @given(case=api_operation.as_strategy(generation_mode=mode))
    def fuzz(case: schemathesis.Case) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        response = client.request(**_for_test_client(kwargs, served.key))
        seen.append(response.status_code)
        assert response.status_code < 500, (case.body, response.text)
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400 and response.status_code != 503:
            error = response.json()["error"]
            assert set(error) == {"type", "message", "field"} and error["message"]

    fuzz()
    assert set(seen) - {401, 403}, f"every case was refused by auth: {seen}"


def _for_test_client(kwargs: dict[str, Any], key: str) -> dict[str, Any]:
    """schemathesis' transport arguments, as the Starlette TestClient takes them, with
    the all-scopes key (the generated credentials would make nearly every case a 401)."""
    allowed = {"method", "url", "params", "json", "content", "data"}
    out = {k: v for k, v in kwargs.items() if k in allowed}
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items()
               if k.lower() not in ("authorization", "x-api-key")}
    out["headers"] = {**headers, "Authorization": f"Bearer {key}"}
    return out


@pytest.fixture
def dashboard(served: Served) -> Iterator[TestClient]:
    with TestClient(create_ui(served.store, api_keys=ring(served)),
                    raise_server_exceptions=False, follow_redirects=False) as ui:
        yield ui


TEXT = st.text(max_size=200) | st.sampled_from(
    ["", "churn", "x' OR 1=1 --", "../../etc/passwd", "\x00", "%00", "a" * 5000,
     "customer_stats", "churn_monitor\"; DROP TABLE x; --", "//evil.example", "\ud7ff"])


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(key=TEXT, target=TEXT, extra=st.binary(max_size=300))
def test_the_dashboard_sign_in_form_never_answers_5xx(dashboard: TestClient, key: str,
                                                      target: str, extra: bytes) -> None:
    answer = dashboard.post("/login", data={"key": key, "next": target})
    assert answer.status_code in (303, 401, 403), answer.text
    if answer.status_code == 303:
        location = answer.headers["location"]
        assert location.startswith("/") and not location.startswith("//")
    raw = dashboard.post("/login", content=extra,
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert raw.status_code < 500


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(page=st.sampled_from(["/catalog", "/lineage", "/models", "/monitoring", "/jobs",
                             "/report"]),
       name=st.sampled_from(["monitor", "q", "view", "model", "service", "page"]),
       value=TEXT)
def test_the_dashboard_pages_never_answer_5xx(dashboard: TestClient, served: Served,
                                              page: str, name: str, value: str) -> None:
    answer = dashboard.get(page, params={name: value},
                           headers={"X-API-Key": served.key})
    assert answer.status_code in (200, 404, 422), (page, name, value, answer.text[:500])
