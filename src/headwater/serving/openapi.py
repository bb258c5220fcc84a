"""The feature server's OpenAPI schema: request models, error responses and API-key auth.

The endpoints read raw bytes (see :mod:`~headwater.serving.requests`), so FastAPI cannot
see their request models; :func:`document` adds them to the schema's components, and each
route points its request body at one with :func:`request_body`. ``POST /features`` is
answered by the edge (:mod:`~headwater.serving.edge`) rather than a FastAPI route, so its
operation is declared here. The schema also declares the two ways to send a key
(``Authorization: Bearer`` and ``X-API-Key``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from headwater.serving.schemas import REQUEST_MODELS, ErrorResponse, FeaturesResponse

_COMPONENTS = "#/components/schemas/{model}"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    404: {"model": ErrorResponse, "description": "Unknown feature view, feature or service"},
    422: {"model": ErrorResponse, "description": "Malformed body or data; 'field' names it"},
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


def _features_operation() -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "Feature values per entity row, with per-view event times "
                "and statuses", "content": _json(FeaturesResponse.__name__)}}
    for status, spec in ERROR_RESPONSES.items():
        responses[str(status)] = {"description": spec["description"],
                                  "content": _json(ErrorResponse.__name__)}
    return {"post": {
        "summary": "Online features",
        "description": "Reads the online store for each entity row. Unknown feature views, "
        "features or feature services give 404; a malformed body or entity row gives 422 "
        "naming the field.",
        "operationId": "features",
        **request_body("FeaturesRequest"),
        "responses": responses,
    }}


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
        schema.setdefault("paths", {})["/features"] = _features_operation()
        models: tuple[type[BaseModel], ...] = (*REQUEST_MODELS, FeaturesResponse,
                                               ErrorResponse)
        for model in models:
            spec = model.model_json_schema(ref_template=_COMPONENTS)
            schemas.update(spec.pop("$defs", {}))
            schemas[model.__name__] = spec
        if auth:
            components["securitySchemes"] = _SECURITY_SCHEMES
            schema["security"] = [{"bearer": []}, {"apiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
