"""On-demand features in online reads: the function runs once over the whole response.

The online store is read for every feature the selection needs (those asked for and, under
hidden names, those the on-demand functions read); the functions then run over the
response's columns and the request fields, which come as extra keys of the entity rows
(``{"card_id": 7, "amount": 12.5}``), and the hidden columns are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.definitions import Field
from headwater.definitions.selection import OnDemandRequest, Selection
from headwater.errors import DataError
from headwater.serving.response import OnlineResponse
from headwater.transforms.execute import cast_column, run_on_demand
from headwater.transforms.functions import Function
from headwater.types import Timestamp

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class OnDemandPlan:
    """A selection with on-demand features, with the function of each on-demand view."""

    selection: Selection
    functions: Mapping[str, Function]


def apply_on_demand(response: OnlineResponse, rows: Sequence[Mapping[str, Any]],
                    plan: OnDemandPlan) -> OnlineResponse:
    """``response`` (holding ``plan.selection.fetched_order``) with the on-demand features
    computed and the columns in ``plan.selection.order``."""
    import pyarrow as pa

    table = response.to_arrow(list(dict.fromkeys(
        fetched for request in plan.selection.on_demand for _, fetched in request.inputs)))
    columns: dict[str, list[Any]] = {}
    dtypes = {}
    for request in plan.selection.on_demand:
        arrays = [table.column(fetched) for _, fetched in request.inputs]
        names = [name for name, _ in request.inputs]
        for field in request.request_fields:
            arrays.append(request_column(request, field, rows))
            names.append(field.name)
        inputs = pa.table(arrays, names=names)
        values = run_on_demand(request.view, plan.functions[request.view.name], inputs)
        for out, field in zip(request.output_names, request.features, strict=True):
            columns[out] = _stored(values[field.name], field)
            dtypes[out] = field.dtype
    return response.with_features(columns, dtypes, plan.selection.order)


def request_column(request: OnDemandRequest, field: Field,
                   rows: Sequence[Mapping[str, Any]]) -> pa.Array:
    """The values of request field ``field`` in ``rows``, as its dtype. DataError names
    the field and the first row that lacks it, or the values that do not fit."""
    import pyarrow as pa

    name = field.name
    owner = f"request field '{name}' of on-demand view '{request.view.name}'"
    try:
        values = [row[name] for row in rows]
    except KeyError:
        index = next(i for i, row in enumerate(rows) if name not in row)
        raise DataError(f"entity row {index} has no '{name}', a request field of on-demand "
                        f"view '{request.view.name}'. Fix: add '{name}' to every entity "
                        "row") from None
    target = field.dtype.to_arrow()
    try:
        return pa.array(values, type=target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass  # e.g. ISO-8601 strings for a timestamp: parse them by a checked cast below
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise DataError(f"{owner}: the entity rows' values mix types ({exc}). Fix: send "
                        f"{field.dtype!r} values") from exc
    if pa.types.is_string(array.type) and field.dtype == Timestamp:
        try:
            return array.cast(target)
        except pa.ArrowInvalid as exc:
            raise DataError(f"{owner}: {exc}. Fix: send ISO-8601 times such as "
                            "'2024-01-01T00:00:00Z'") from exc
    return cast_column(array, field, owner, "the entity rows")


def _stored(values: pa.Array, field: Field) -> list[Any]:
    """Values as an online response keeps them: timestamps as epoch microseconds."""
    import pyarrow as pa

    target = field.dtype.to_arrow()
    if field.dtype == Timestamp:
        return values.cast(pa.int64()).to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_list(target) and pa.types.is_timestamp(target.value_type):
        return values.cast(pa.list_(pa.int64())).to_pylist()  # type: ignore[no-any-return]
    return values.to_pylist()  # type: ignore[no-any-return]

