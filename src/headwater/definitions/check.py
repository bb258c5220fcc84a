"""Checks of a feature view against its source's schema, run at ``apply``.

Pure functions: the caller reads the source schema (the offline engine does the I/O) and
passes it in. A view whose schema was omitted gets it inferred here.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from headwater.definitions.base import RESERVED_PREFIX, check_identifier
from headwater.definitions.feature_view import FeatureView, Field
from headwater.errors import DefinitionError
from headwater.types import String, compatible, from_arrow

if TYPE_CHECKING:
    import pyarrow as pa


def check_view(view: FeatureView, schema: pa.Schema) -> FeatureView:
    """Check ``view`` against the Arrow ``schema`` of its source; return it with its
    feature schema resolved. Raises DefinitionError naming the view, the field and the fix."""
    import pyarrow.types as pat

    me = f"FeatureView '{view.name}'"
    columns = {name: schema.field(name).type for name in schema.names}
    listing = ", ".join(n for n in schema.names if not n.startswith(RESERVED_PREFIX))
    source = view.batch_source.label()

    for field_name in ("timestamp_field", "created_timestamp_field"):
        column = getattr(view.batch_source, field_name)
        if column is None:
            continue
        if column not in columns:
            raise DefinitionError(
                me, f"source.{field_name}", f"{source} has no column '{column}'",
                f"name one of its columns: {listing}",
            )
        kind = columns[column]
        if not (pat.is_timestamp(kind) or pat.is_date(kind) or pat.is_string(kind)
                or pat.is_large_string(kind)):
            raise DefinitionError(
                me, f"source.{field_name}", f"column '{column}' of {source} has type {kind}, "
                "not a timestamp", "point it at a timestamp (or ISO-8601 string) column",
            )

    for key in view.join_keys:
        if key not in columns:
            raise DefinitionError(
                me, "entities", f"join key '{key}' is absent from {source}",
                f"add a '{key}' column to the source, or use an entity whose join keys are "
                f"among: {listing}",
            )
        kind = columns[key]
        if not (pat.is_integer(kind) or pat.is_string(kind) or pat.is_large_string(kind)):
            raise DefinitionError(
                me, "entities", f"join key '{key}' has type {kind}",
                "join keys must be integer or string columns",
            )

    keys = tuple(Field(key, from_arrow(columns[key]) or String) for key in view.join_keys)
    view = dataclasses.replace(view, entity_columns=keys)
    if view.schema is None:
        if view.aggregations:
            used = {a.column for a in view.aggregations}
            missing = sorted(used - set(columns))
            if missing:
                raise DefinitionError(
                    me, "aggregations", f"{source} has no column(s) {missing}",
                    f"aggregate columns of the source: {listing}")
            columns = {n: t for n, t in columns.items() if n in used}
        return dataclasses.replace(view, schema=_infer(view, columns))
    for position, feature in enumerate(view.schema):
        if feature.name not in columns:
            raise DefinitionError(
                me, f"schema[{position}]", f"{source} has no column '{feature.name}'",
                f"fix the name, or add the column; source columns are: {listing}",
            )
        actual = from_arrow(columns[feature.name])
        if actual is None or not compatible(feature.dtype, actual):
            raise DefinitionError(
                me, f"schema[{position}]",
                f"feature '{feature.name}' is declared {feature.dtype!r} but column "
                f"'{feature.name}' of {source} holds {columns[feature.name]}",
                f"declare it as {actual!r}" if actual is not None
                else "convert the column to a supported type",
            )
    return view


def _infer(view: FeatureView, columns: dict[str, pa.DataType]) -> tuple[Field, ...]:
    me = f"FeatureView '{view.name}'"
    skip = set(view.join_keys) | set(view.batch_source.time_columns())
    fields = []
    for name, arrow_type in columns.items():
        if name in skip or name.startswith(RESERVED_PREFIX):
            continue
        check_identifier(me, f"inferred schema column '{name}'", name)
        dtype = from_arrow(arrow_type)
        if dtype is None:
            raise DefinitionError(
                me, "schema", f"column '{name}' has type {arrow_type}, which has no dtype",
                "declare schema=[...] without this column, or convert it",
            )
        fields.append(Field(name, dtype))
    if not fields:
        raise DefinitionError(me, "schema", "the source has no feature columns",
                              "add feature columns to the source")
    return tuple(fields)
