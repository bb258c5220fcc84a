"""POST /predict bodies: parsed with the field named, in step with the documented model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from headwater.serving import requests
from headwater.serving.requests import RequestBodyError, parse_predict
from headwater.serving.schemas import REQUEST_MODELS, PredictRequest


def parse(body: dict[str, Any]) -> requests.PredictQuery:
    return parse_predict(json.dumps(body).encode())


def test_the_documented_model_matches_what_the_parser_accepts() -> None:
    assert PredictRequest in REQUEST_MODELS
    example = PredictRequest.model_json_schema()["examples"][0]
    PredictRequest.model_validate(example)
    query = parse(example)
    assert query.model == example["model"]
    assert set(PredictRequest.model_fields) == requests._PREDICT_FIELDS


def test_shared_request_fields_join_every_entity_row() -> None:
    query = parse({"model": "churn@production", "entities": [{"id": 1}, {"id": 2}],
                   "request": {"amount": 3.5}})
    assert query.rows == [{"id": 1, "amount": 3.5}, {"id": 2, "amount": 3.5}]
    assert query.request_names == ("amount",)


def test_request_fields_per_row() -> None:
    query = parse({"model": "churn:3", "entities": [{"id": 1}, {"id": 2}],
                   "request": [{"amount": 1}, {"amount": 2, "channel": "web"}]})
    assert query.rows == [{"id": 1, "amount": 1}, {"id": 2, "amount": 2, "channel": "web"}]
    assert query.request_names == ("amount", "channel")


def test_without_request_fields_the_rows_are_the_entities() -> None:
    query = parse({"model": "churn", "entities": [{"id": 1}]})
    assert query.rows == [{"id": 1}] and query.request_names == ()


@pytest.mark.parametrize(("body", "field"), [
    ({"entities": [{"id": 1}]}, "model"),
    ({"model": 3, "entities": [{"id": 1}]}, "model"),
    ({"model": "churn@", "entities": [{"id": 1}]}, "model"),
    ({"model": "churn:0", "entities": [{"id": 1}]}, "model"),
    ({"model": "churn", "entities": []}, "entities"),
    ({"model": "churn", "entities": [3]}, "entities[0]"),
    ({"model": "churn", "entities": [{"id": 1}], "request": 5}, "request"),
    ({"model": "churn", "entities": [{"id": 1}], "request": [{}, {}]}, "request"),
    ({"model": "churn", "entities": [{"id": 1}], "request": ["x"]}, "request[0]"),
    ({"model": "churn", "entities": [{"id": 1}], "request": {"id": 2}}, "request.id"),
    ({"model": "churn", "entities": [{"id": 1}], "extra": 1}, "extra"),
])
def test_malformed_bodies_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestBodyError) as caught:
        parse(body)
    assert caught.value.field == field


def test_a_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(RequestBodyError) as caught:
        parse_predict(b"{nope")
    assert caught.value.field == "body"
