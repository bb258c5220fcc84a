"""The feature server's request and response shapes, as pydantic models for OpenAPI.

These models document the API (``/openapi.json``, ``/docs``). Requests are parsed by
:mod:`~headwater.serving.requests` from raw bytes, and responses are written with orjson,
so no model runs on the hot path; a test checks that the documented and the parsed shapes
agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from headwater.serving.requests import MAX_ENTITIES, MAX_PUSH_ROWS

Status = Literal["PRESENT", "MISSING", "EXPIRED"]


class FeaturesRequest(BaseModel):
    """Online features for entity rows: give ``features`` or ``feature_service``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "features": ["driver_stats:conv_rate", "driver_stats:trips"],
        "entities": [{"driver_id": 1001}, {"driver_id": 1002}],
    }]})

    features: list[str] | None = Field(
        None, min_length=1, description="'view:feature' or 'view:*' references.")
    feature_service: str | None = Field(None, description="A registered feature service.")
    entities: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_ENTITIES,
        description="One object of join keys per entity row; a row may carry "
        "the keys of several views, and the request fields of on-demand views "
        "(e.g. {\"card_id\": 7, \"amount\": 12.5}).")
    full_feature_names: bool = Field(
        False, description="Name result columns 'view__feature' instead of 'feature'.")


class FeaturesMetadata(BaseModel):
    entity_names: list[str] = Field(description="The join key columns of 'results'.")
    feature_names: list[str] = Field(description="The feature columns of 'results', "
                                     "in request order.")


class ViewStatuses(BaseModel):
    event_timestamps: list[datetime | None] = Field(
        description="Per entity row, the event time (UTC) of the served row, null if none.")
    statuses: list[Status] = Field(
        description="Per entity row: PRESENT, MISSING (never seen) or EXPIRED (older than "
        "the view's ttl; its values are null).")


class FeaturesResponse(BaseModel):
    """Columns: one list per join key and feature, one value per entity row in order."""

    metadata: FeaturesMetadata
    results: dict[str, list[Any]]
    views: dict[str, ViewStatuses] = Field(description="Per feature view.")


class PushRequest(BaseModel):
    """Rows for one feature view: its join keys, its source's timestamp field (ISO-8601;
    naive means UTC), optionally its created field, and every feature; or events of a push
    or stream source (``view`` names the source), applied to every view of it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "view": "driver_stats",
        "rows": [{"driver_id": 1001, "event_timestamp": "2024-01-15T10:00:00Z",
                  "conv_rate": 0.42, "trips": 7}],
        "to": "online",
    }]})

    view: str
    rows: list[dict[str, Any]] = Field(max_length=MAX_PUSH_ROWS)
    to: Literal["online", "offline", "both"] | None = Field(
        None, description="'offline' appends a Parquet file to the view's folder source; "
        "'both' writes offline first, then online. Default: 'online' for a view's rows, "
        "'both' for a source's events (training and materialization read the offline copy).")


class PushResponse(BaseModel):
    view: str
    to: str
    rows: int = Field(description="Rows accepted.")
    online_stored: int = Field(description="Online records kept; rows older than the "
                               "stored value are skipped.")
    offline_file: str | None = Field(description="The new Parquet file, relative to the "
                                     "repo, when written offline.")


class PredictRequest(BaseModel):
    """Predictions of a model version for entity rows, from online features."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "model": "churn@production",
        "entities": [{"customer_id": 42}, {"customer_id": 43}],
        "request": {"amount": 12.5},
    }]})

    model: str = Field(description="'name@alias' (churn@production), 'name:version' "
                       "(churn:3) or 'name' (= name@production).")
    entities: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_ENTITIES,
        description="One object of join keys per entity row.")
    request: dict[str, Any] | list[dict[str, Any]] | None = Field(
        None, description="Request fields of the model's on-demand features: one object "
        "shared by every entity row, or a list with one object per row.")


class PredictResponse(BaseModel):
    """One prediction per entity row, in order, with the feature values the model used."""

    model: str
    version: int = Field(description="The model version that answered (an alias is "
                         "resolved when the server reads the registry).")
    request_id: str = Field(description="Identifies the request in the prediction log.")
    predictions: list[Any] = Field(description="Per entity row: the class label "
                                   "(classifiers) or the value (regressors).")
    probabilities: list[float] | None = Field(
        description="Classifiers: per row, the probability of the positive class (binary) "
        "or of the predicted class (multiclass); null for regressors.")
    features: dict[str, list[Any]] = Field(
        description="The model's input columns (features, then request fields), one value "
        "per entity row.")
    statuses: dict[str, list[Status]] = Field(
        description="Per feature view, per entity row: PRESENT, MISSING or EXPIRED.")


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description="'ok' or 'unavailable: <reason>' for "
                                   "online_store and registry.")


class ErrorDetail(BaseModel):
    type: str = Field(description="invalid_request, data_error, definition_error, "
                      "not_found, unauthorized, method_not_allowed, store_unavailable, "
                      "http_error (another HTTP status, e.g. an unknown path) or "
                      "internal_error.")
    message: str = Field(description="What is wrong and how to fix it.")
    field: str | None = Field(None, description="The request field at fault, if one is.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


REQUEST_MODELS: tuple[type[BaseModel], ...] = (FeaturesRequest, PushRequest, PredictRequest)
