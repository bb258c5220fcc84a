"""The entity frame: the rows a training frame is built for.

Users pass a pandas or polars DataFrame, an Arrow table, or a SQL query (run by the engine,
see ``duckdb.py``). The frame becomes an Arrow table (:func:`headwater.offline.frames.to_arrow`,
the conversion push uses too) that is never modified: the result
returns these columns as given, same values and same Arrow types. Only a narrow copy of the
join keys and the time (:func:`narrow_table`) goes into the join.

The time column is ``timestamp_field`` when given, else ``event_timestamp``, else the frame's
only timestamp column. Its values are read by the rules of :mod:`headwater.offline.timestamps`
(naive means UTC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.errors import DataError
from headwater.offline.sql_names import ROW, TIME
from headwater.offline.timestamps import TimeKind, time_kind

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.offline.base import ViewRequest

DEFAULT_TIME_COLUMN = "event_timestamp"
ME = "entity frame"


@dataclass(frozen=True)
class EntityFrame:
    """The user's rows (``table``, untouched), its time column and how to read it."""

    table: pa.Table
    time_column: str
    time_kind: TimeKind


def find_time_column(schema: pa.Schema, timestamp_field: str | None) -> tuple[str, TimeKind]:
    """The entity frame's time column and its kind; DataError naming the columns if there
    is none, or several candidates, or the named one cannot hold times."""
    names = list(schema.names)
    listing = ", ".join(names) or "(none)"
    if timestamp_field is not None:
        if timestamp_field not in names:
            raise DataError(
                f"{ME}: timestamp_field '{timestamp_field}' is not a column; columns are "
                f"{listing}. Fix: pass timestamp_field= one of them"
            )
        chosen = timestamp_field
    elif DEFAULT_TIME_COLUMN in names:
        chosen = DEFAULT_TIME_COLUMN
    else:
        candidates = [n for n in names if time_kind(schema.field(n).type) in
                      (TimeKind.INSTANT, TimeKind.NAIVE, TimeKind.DATE)]
        if len(candidates) != 1:
            found = "no timestamp column" if not candidates else (
                f"several timestamp columns ({', '.join(candidates)})")
            raise DataError(
                f"{ME}: cannot tell which column holds the event time: {found} among "
                f"{listing}. Fix: pass timestamp_field='...' or name the column "
                f"'{DEFAULT_TIME_COLUMN}'"
            )
        chosen = candidates[0]
    kind = time_kind(schema.field(chosen).type)
    if kind is None:
        raise DataError(
            f"{ME}: time column '{chosen}' has type {schema.field(chosen).type}. Fix: use a "
            "timestamp, date or ISO-8601 string column"
        )
    return chosen, kind


def key_class(arrow_type: pa.DataType) -> str | None:
    """``integer`` or ``string`` for a type join keys may have, else None."""
    import pyarrow.types as pat

    if pat.is_dictionary(arrow_type):
        return key_class(arrow_type.value_type)
    if pat.is_integer(arrow_type):
        return "integer"
    if pat.is_string(arrow_type) or pat.is_large_string(arrow_type) or (
        pat.is_string_view(arrow_type)
    ):
        return "string"
    return None


def check_frame(
    schema: pa.Schema,
    requests: Sequence[ViewRequest],
    source_schemas: Sequence[pa.Schema],
) -> None:
    """Check the frame's join keys against each view's source, and that no feature column
    would overwrite an entity column. DataError names the view, the column and the fix."""
    names = set(schema.names)
    for request, source_schema in zip(requests, source_schemas, strict=True):
        view = request.view.name
        for key in request.view.join_keys:
            if key not in names:
                raise DataError(
                    f"{ME}: join key '{key}' of feature view '{view}' is missing; columns "
                    f"are {', '.join(schema.names)}. Fix: add a '{key}' column to the entity "
                    f"frame, or drop the features of '{view}' from the request"
                )
            mine = key_class(schema.field(key).type)
            theirs = key_class(source_schema.field(key).type)
            if mine is None or mine != theirs:
                raise DataError(
                    f"{ME}: join key '{key}' has type {schema.field(key).type} but feature "
                    f"view '{view}' stores it as {source_schema.field(key).type}. Fix: cast "
                    f"the entity frame's '{key}' to {theirs or 'an integer or string'} type"
                )
        for output in request.output_names:
            if output in names:
                raise DataError(
                    f"{ME}: column '{output}' would be overwritten by feature '{output}' of "
                    f"view '{view}'. Fix: rename or drop the column, or pass "
                    "full_feature_names=True"
                )


def narrow_table(frame: EntityFrame, keys: Sequence[str]) -> pa.Table:
    """The columns the join needs: the row position, each join key once, and the time.

    Zero-copy: the columns are the frame's own arrays."""
    import numpy as np
    import pyarrow as pa

    table = frame.table
    columns: dict[str, Any] = {ROW: pa.array(np.arange(table.num_rows, dtype=np.int64))}
    for key in dict.fromkeys(keys):
        column = table.column(key)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        columns[key] = column
    time = table.column(frame.time_column)
    if pa.types.is_dictionary(time.type):
        time = time.cast(time.type.value_type)
    columns[TIME] = time
    return pa.table(columns)
