"""Feature server request bodies: raw JSON bytes -> typed queries, with the field named.

The server parses bodies here with orjson instead of through a web framework's model
layer: it is the hot path of ``POST /features``. The pydantic models in
:mod:`~headwater.serving.schemas` document the same shapes in the OpenAPI schema; a test
keeps the two in step. A malformed body raises :class:`RequestBodyError`, a DataError that
names the offending field (``entities[2]``) so the edge can answer 422 with it.

A request holds at most :data:`MAX_ENTITIES` entity rows (``/features``, ``/predict``) or
:data:`MAX_PUSH_ROWS` rows (``/push``); more is a 422 naming the limit, so one request
cannot hold a worker for long. JSON nested deeper than orjson's limit (1024) is malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from headwater.errors import DataError
from headwater.streaming.push import TARGETS

MAX_ENTITIES = 10_000
"""Entity rows one ``POST /features`` or ``POST /predict`` may ask for."""
MAX_PUSH_ROWS = 100_000
"""Rows one ``POST /push`` may carry."""
_MAX_ROWS = {"entities": MAX_ENTITIES, "request": MAX_ENTITIES, "rows": MAX_PUSH_ROWS}


class RequestBodyError(DataError):
    """A request body that is not the documented shape; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"field '{field}': {message}")


@dataclass(frozen=True)
class FeaturesQuery:
    """``POST /features``: a feature list or a feature service name, and entity rows."""

    features: tuple[str, ...] | None
    feature_service: str | None
    entities: list[dict[str, Any]]
    full_feature_names: bool


@dataclass(frozen=True)
class PredictQuery:
    """``POST /predict``: a model reference, entity rows, and request fields (one object
    shared by every row, or one object per row), merged into ``rows``."""

    model: str
    rows: list[dict[str, Any]]
    request_names: tuple[str, ...]


@dataclass(frozen=True)
class PushQuery:
    """``POST /push``: rows for one view and where to write them."""

    view: str
    rows: list[dict[str, Any]]
    to: str | None


_FEATURES_FIELDS = frozenset({"features", "feature_service", "entities", "full_feature_names"})
_PUSH_FIELDS = frozenset({"view", "rows", "to"})
_PREDICT_FIELDS = frozenset({"model", "entities", "request"})


def parse_features(body: bytes) -> FeaturesQuery:
    """Parse and check a ``POST /features`` body."""
    data = _object(body, _FEATURES_FIELDS)
    features = data.get("features")
    service = data.get("feature_service")
    if (features is None) == (service is None):
        raise RequestBodyError("features", "give either 'features' (a list of "
                               "'view:feature') or 'feature_service' (a name), not both")
    refs: tuple[str, ...] | None = None
    if features is not None:
        if not isinstance(features, list) or not features:
            raise RequestBodyError("features", "expected a non-empty list of 'view:feature' "
                                   "strings")
        for index, ref in enumerate(features):
            if not isinstance(ref, str):
                raise RequestBodyError(f"features[{index}]", f"expected a 'view:feature' "
                                       f"string, got {_kind(ref)}")
        refs = tuple(features)
    elif not isinstance(service, str) or not service:
        raise RequestBodyError("feature_service", f"expected a feature service name, got "
                               f"{_kind(service)}")
    entities = _rows(data, "entities", required=True)
    full = data.get("full_feature_names", False)
    if not isinstance(full, bool):
        raise RequestBodyError("full_feature_names", f"expected true or false, got "
                               f"{_kind(full)}")
    return FeaturesQuery(refs, service, entities, full)


def parse_predict(body: bytes) -> PredictQuery:
    """Parse and check a ``POST /predict`` body. The model reference is checked for shape
    only (``name``, ``name@alias``, ``name:version``); the request fields are merged into
    the entity rows, as the online read takes them, and a name in both is refused."""
    from headwater.errors import NotFoundError
    from headwater.models.base import ModelRef

    data = _object(body, _PREDICT_FIELDS)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestBodyError("model", f"expected a model reference such as "
                               f"'churn@production', got {_kind(model)}")
    try:
        ModelRef.parse(model)
    except NotFoundError as exc:
        raise RequestBodyError("model", str(exc)) from None
    entities = _rows(data, "entities", required=True)
    request = data.get("request")
    if request is None:
        return PredictQuery(model, entities, ())
    if isinstance(request, dict):
        shared = [request] * len(entities)
    elif isinstance(request, list):
        if len(request) != len(entities):
            raise RequestBodyError("request", f"a list of request fields needs one object "
                                   f"per entity row: got {len(request)} for {len(entities)} "
                                   "entities. Fix: send one object shared by every row, or "
                                   "one per row")
        shared = _rows(data, "request", required=True)
    else:
        raise RequestBodyError("request", f"expected an object of request fields, or a "
                               f"list of them (one per entity row), got {_kind(request)}")
    rows = []
    names: dict[str, None] = {}
    for index, (entity, fields) in enumerate(zip(entities, shared, strict=True)):
        clash = next((name for name in fields if name in entity), None)
        if clash is not None:
            raise RequestBodyError(f"request.{clash}", f"'{clash}' is given both in "
                                   f"entities[{index}] and in request. Fix: send it once")
        names.update(dict.fromkeys(fields))
        rows.append({**entity, **fields})
    return PredictQuery(model, rows, tuple(names))


def parse_push(body: bytes) -> PushQuery:
    """Parse and check a ``POST /push`` body."""
    data = _object(body, _PUSH_FIELDS)
    view = data.get("view")
    if not isinstance(view, str) or not view:
        raise RequestBodyError("view", f"expected a feature view name, got {_kind(view)}")
    to = data.get("to")
    if to is not None and to not in TARGETS:
        raise RequestBodyError("to", f"expected one of {list(TARGETS)}, got {to!r}")
    return PushQuery(view, _rows(data, "rows", required=False), to)


def _object(body: bytes, fields: frozenset[str]) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestBodyError("body", f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RequestBodyError("body", f"expected a JSON object, got {_kind(data)}")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise RequestBodyError(unknown[0], f"unknown field; the fields are {sorted(fields)}")
    return data


def _rows(data: dict[str, Any], name: str, *, required: bool) -> list[dict[str, Any]]:
    rows = data.get(name)
    if rows is None or not isinstance(rows, list) or (required and not rows):
        raise RequestBodyError(name, f"expected a {'non-empty ' if required else ''}list of "
                               f"objects, got {_kind(rows)}")
    limit = _MAX_ROWS[name]
    if len(rows) > limit:
        raise RequestBodyError(name, f"{len(rows)} rows is more than the {limit} one request "
                               f"may hold. Fix: split them into requests of at most {limit}")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestBodyError(f"{name}[{index}]", f"expected an object, got {_kind(row)}")
    return rows


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (missing or null)"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)
