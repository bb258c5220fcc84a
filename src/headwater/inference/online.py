"""Online inference: entity rows -> one online read -> the model's input -> predictions.

:func:`serving_plan` is computed once per model version (and again when the registry
changes): the version's feature service as trained (:mod:`~headwater.inference.service`),
which of the model's input columns the online read gives and which are request fields of
on-demand views, sent with the entity rows. :func:`predict_online` then runs
``store.get_online_features`` for the service (one round trip; on-demand features run inside
it with the request fields), builds the input table from the response and the request
fields, and calls the verified predictor: the same
:func:`~headwater.models.inputs.model_input` conversion training and batch inference use.
``/predict`` is this function behind the feature server's edge; Python callers may use it
directly (``now`` fixes the read time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureService, Field
from headwater.errors import DataError
from headwater.models.base import PREDICTION, PROBABILITY

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from headwater.definitions.selection import OnDemandRequest
    from headwater.models.base import ModelVersion, Predictor
    from headwater.serving.response import OnlineResponse
    from headwater.store import FeatureStore


class MissingRequestField(DataError):
    """An entity row lacks a request field the model's on-demand features need; ``field``
    names it (``request.amount``)."""

    def __init__(self, name: str, row: int, view: str) -> None:
        self.field = f"request.{name}"
        super().__init__(f"request field '{name}' is missing for entity row {row}; on-demand "
                         f"view '{view}' needs it. Fix: send it in 'request' (one object for "
                         "every row, or one object per row)")


@dataclass(frozen=True)
class ServingPlan:
    """What serving one model version needs, resolved once.

    ``fetched`` are the input columns the online read gives, ``request_inputs`` the input
    columns that are request fields (with the on-demand view and field that declare them),
    ``request_fields`` every request field the service's on-demand views need."""

    version: ModelVersion
    service: FeatureService
    fetched: tuple[str, ...]
    request_inputs: Mapping[str, tuple[OnDemandRequest, Field]]
    request_fields: Mapping[str, str]
    """field name -> the on-demand view that needs it."""


@dataclass(frozen=True)
class OnlinePrediction:
    """The result of :func:`predict_online`: outputs per entity row, the input table the
    model saw (its feature columns in order) and the online response (statuses)."""

    version: ModelVersion
    predictions: np.ndarray
    probabilities: np.ndarray | None
    inputs: pa.Table
    response: OnlineResponse


def serving_plan(store: FeatureStore, version: ModelVersion) -> ServingPlan:
    """The plan for ``version``; DataError when one of its input columns is neither given
    by its feature service nor a request field of one of the service's on-demand views."""
    from headwater.inference.service import training_service

    service = training_service(store, version)
    selection = store.resolve_features(service, caller="predict")
    given = set(selection.order)
    declared: dict[str, tuple[OnDemandRequest, Field]] = {}
    for request in selection.on_demand:
        for field in request.request_fields:
            declared.setdefault(field.name, (request, field))
    fetched, request_inputs = [], {}
    for name in version.features:
        if name in given:
            fetched.append(name)
        elif name in declared:
            request_inputs[name] = declared[name]
        else:
            raise DataError(
                f"model '{version.model}' version {version.version} takes input '{name}', "
                f"which feature service '{service.name}' does not give (it gives "
                f"{list(selection.order)}, request fields {sorted(declared)}). Fix: retrain "
                "the model on the service as it is now")
    return ServingPlan(version, service, tuple(fetched), request_inputs,
                       {name: request.view.name for name, (request, _) in declared.items()})


def check_request_fields(plan: ServingPlan, rows: Sequence[Mapping[str, Any]]) -> None:
    """Raise :class:`MissingRequestField` for the first request field a row lacks."""
    for name, view in plan.request_fields.items():
        for index, row in enumerate(rows):
            if name not in row:
                raise MissingRequestField(name, index, view)


def predict_online(store: FeatureStore, predictor: Predictor, plan: ServingPlan,
                   rows: Sequence[Mapping[str, Any]], *,
                   now: datetime | None = None) -> OnlinePrediction:
    """Predict for entity ``rows`` (join keys plus request fields) from online features at
    ``now`` (default: the current time)."""
    check_request_fields(plan, rows)
    response = store.get_online_features(plan.service, rows, now=now)
    inputs = input_table(plan, response, rows)
    outputs = predictor.predict(inputs)
    return OnlinePrediction(plan.version, outputs[PREDICTION], outputs.get(PROBABILITY),
                            inputs, response)


def input_table(plan: ServingPlan, response: OnlineResponse,
                rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The model's input columns, in its order: fetched features typed as their views
    declare them, request fields as their on-demand views declare them."""
    import pyarrow as pa

    from headwater.transforms.online import request_column

    fetched = response.to_arrow(plan.fetched)
    if not plan.request_inputs:
        return fetched
    columns = []
    for name in plan.version.features:
        if name in plan.request_inputs:
            request, field = plan.request_inputs[name]
            columns.append(request_column(request, field, rows))
        else:
            columns.append(fetched.column(name))
    return pa.table(columns, names=list(plan.version.features))
