"""The feature server's OpenAPI schema: request models, error responses and API-key auth.

The endpoints read raw bytes (see :mod:`~headwater.serving.requests`), so FastAPI cannot
see their request models; :func:`document` adds them to the schema's components, and each
route points its request body at one with :func:`request_body`. ``POST /features`` and
``POST /predict`` are answered by the edge (:mod:`~headwater.serving.edge`) rather than
FastAPI routes, so their operations are declared here. The schema also declares the two
ways to send a key (``Authorization: Bearer`` and ``X-API-Key``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from headwater.serving.schemas import (
    REQUEST_MODELS,
    ErrorResponse,
    FeaturesResponse,
    PredictResponse,
)

_COMPONENTS = "#/components/schemas/{model}"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    403: {"model": ErrorResponse, "description": "The API key lacks the scope this needs"},
    404: {"model": ErrorResponse,
          "description": "Unknown feature view, feature, service, model, version or alias"},
    413: {"model": ErrorResponse, "description": "The body is larger than the server takes"},
    422: {"model": ErrorResponse, "description": "Malformed body or data, or too many rows; "
          "'field' names it"},
    503: {"model": ErrorResponse, "description": "The online store cannot be reached"},
}

_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "Authorization: Bearer <API key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def request_body(model: str) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body has the schema of ``model``."""
    return {"requestBody": {"required": True, "content": _json(model)}}


def _json(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _COMPONENTS.format(model=model)}}}


def _edge_operation(operation_id: str, summary: str, description: str, *, ok: str,
                    request: str, response: str) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": ok, "content": _json(response)}}
    for status, spec in ERROR_RESPONSES.items():
        responses[str(status)] = {"description": spec["description"],
                                  "content": _json(ErrorResponse.__name__)}
    return {"post": {"summary": summary, "description": description,
                     "operationId": operation_id, **request_body(request),
                     "responses": responses}}


def _features_operation() -> dict[str, Any]:
    return _edge_operation(
        "features", "Online features",
        "Reads the online store for each entity row. Unknown feature views, features or "
        "feature services give 404; a malformed body or entity row gives 422 naming the "
        "field.",
        ok="Feature values per entity row, with per-view event times and statuses",
        request="FeaturesRequest", response=FeaturesResponse.__name__)


def _predict_operation() -> dict[str, Any]:
    return _edge_operation(
        "predict", "Predict",
        "Reads the model's feature service from the online store for each entity row (one "
        "round trip; on-demand features computed with the request fields), runs the model "
        "version the reference names and logs the request in the background. An unknown "
        "model, version or alias gives 404; a malformed body or a missing request field "
        "gives 422 naming the field (e.g. 'request.amount'); an unreachable store 503.",
        ok="One prediction per entity row, with the model version, the input values and "
        "per-view statuses", request="PredictRequest", response=PredictResponse.__name__)


def _document_auth_errors(paths: dict[str, Any]) -> None:
    """Every operation (``/health`` and ``/metrics`` too) may answer 401 and 403."""
    for operations in paths.values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in (401, 403):
                responses.setdefault(str(status), {
                    "description": ERROR_RESPONSES[status]["description"],
                    "content": _json(ErrorResponse.__name__)})


def document(app: FastAPI, *, auth: bool = True) -> None:
    """Make ``app.openapi()`` include the request models and, with ``auth``, the key
    schemes required by every operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        paths = schema.setdefault("paths", {})
        paths["/features"] = _features_operation()
        paths["/predict"] = _predict_operation()
        models: tuple[type[BaseModel], ...] = (*REQUEST_MODELS, FeaturesResponse,
                                               PredictResponse, ErrorResponse)
        for model in models:
            spec = model.model_json_schema(ref_template=_COMPONENTS)
            schemas.update(spec.pop("$defs", {}))
            schemas[model.__name__] = spec
        if auth:
            components["securitySchemes"] = _SECURITY_SCHEMES
            schema["security"] = [{"bearer": []}, {"apiKey": []}]
            _document_auth_errors(paths)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
