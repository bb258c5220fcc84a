"""Checks of a ModelSpec at apply time, against its label source and feature service.

``FeatureStore.apply`` calls :func:`check_model` for each ModelSpec, so that a model that
could never be trained is refused when it is registered rather than when a scheduled
training job runs: the label source must have the label column, the timestamp column,
every join key of the feature service's views and the request fields its on-demand views
read; the label column's type must suit the task; and no feature may share a name with a
label source column (the training frame would hold both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from headwater.definitions import Definition, FeatureView, ModelSpec, OnDemandFeatureView
from headwater.definitions.check import check_view
from headwater.definitions.selection import Selection, resolve_selection
from headwater.errors import DefinitionError, NotFoundError
from headwater.models.frame import join_keys, label_columns

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.store import FeatureStore


def check_model(store: FeatureStore, spec: ModelSpec,
                given: Mapping[tuple[str, str], Definition]) -> ModelSpec:
    """``spec`` unchanged when its label source fits its feature service and task (see the
    module docstring); DefinitionError naming the model, the field and the fix otherwise.

    Views are taken from ``given`` (the objects of the same apply call) before the
    registry."""
    me = f"ModelSpec '{spec.name}'"
    selection = _selection(store, spec, given)
    source = spec.label.source
    schema = store.offline.source_schema(source)
    listing = ", ".join(schema.names)
    keys = join_keys(selection)
    for column in label_columns(spec, selection):
        if column in schema.names:
            continue
        if column == spec.label.column:
            field, why = "label.column", f"label column '{column}'"
        elif column == source.timestamp_field:
            field, why = "label.source.timestamp_field", f"timestamp column '{column}'"
        elif column in keys:
            field = "label.source"
            why = f"column '{column}', a join key of feature service '{spec.features.name}'"
        else:
            field = "label.source"
            why = (f"column '{column}', a request field of an on-demand view of feature "
                   f"service '{spec.features.name}'")
        raise DefinitionError(me, field, f"{source.label()} has no {why}",
                              f"add it to the label source or name one of its columns: "
                              f"{listing}")
    _check_time(me, source.timestamp_field, schema)
    _check_label(me, spec, schema.field(spec.label.column).type)
    clashes = sorted(set(selection.order) & set(label_columns(spec, selection)))
    if clashes:
        raise DefinitionError(
            me, "label", f"feature(s) {clashes} of '{spec.features.name}' have the names of "
            f"the label, key or time columns of {source.label()}", "rename the label "
            "source's columns, or select other features")
    return spec


def _selection(store: FeatureStore, spec: ModelSpec,
               given: Mapping[tuple[str, str], Definition]) -> Selection:
    me = f"ModelSpec '{spec.name}'"

    def lookup(name: str) -> FeatureView | OnDemandFeatureView:
        view = given.get((FeatureView.kind, name))
        if isinstance(view, FeatureView):
            return check_view(view, store.offline.source_schema(view.batch_source))
        on_demand = given.get((OnDemandFeatureView.kind, name))
        if isinstance(on_demand, OnDemandFeatureView):
            return on_demand
        try:
            return store.get_feature_view(name)
        except NotFoundError:
            pass
        try:
            return store.get_on_demand_feature_view(name)
        except NotFoundError:
            raise DefinitionError(
                me, "features", f"feature service '{spec.features.name}' selects view "
                f"'{name}', which is neither registered nor being applied",
                "apply the view with the model, or correct the feature service") from None

    try:
        return resolve_selection(spec.features, lookup, caller=me)
    except NotFoundError as exc:
        raise DefinitionError(me, "features", str(exc),
                              "select features the views have") from exc


def _check_time(me: str, column: str, schema: pa.Schema) -> None:
    from headwater.offline.timestamps import time_kind

    kind = schema.field(column).type
    if time_kind(kind) is None:
        raise DefinitionError(me, "label.source.timestamp_field",
                              f"column '{column}' has type {kind}, not a time",
                              "point it at a timestamp, date or ISO-8601 string column")


def _check_label(me: str, spec: ModelSpec, kind: pa.DataType) -> None:
    import pyarrow.types as pat

    if pat.is_dictionary(kind):
        kind = kind.value_type
    text = pat.is_string(kind) or pat.is_large_string(kind) or pat.is_string_view(kind)
    if spec.task == "classification":
        if pat.is_integer(kind) or pat.is_boolean(kind) or text:
            return
        raise DefinitionError(
            me, "label.column", f"label '{spec.label.column}' has type {kind}, which is not "
            "a class label", "store classes as integers, booleans or strings (cast a float "
            "0.0/1.0 column to int), or use a regressor for a continuous target")
    if pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind):
        return
    raise DefinitionError(
        me, "label.column", f"label '{spec.label.column}' has type {kind}, not a number",
        "give a regression model a numeric label, or use a classifier for classes")
