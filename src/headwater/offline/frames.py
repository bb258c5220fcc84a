"""Frames users hand to Headwater, as Arrow tables.

Entity frames (``get_historical_features``) and pushed rows (``push``) come as a pandas
DataFrame (its index is dropped), a polars DataFrame, an Arrow table or record batch, and,
for pushed rows, a list of dicts (one per row; a key missing from a row is null). This is
the one conversion to Arrow for both, at the edge, so both refuse the same things with a
DataError naming the owner and the fix: an unsupported kind, values pandas cannot convert
to one Arrow type, and duplicate column names (which no column lookup could resolve).
Arrow input is returned as is, never copied.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headwater.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa


def to_arrow(data: Any, owner: str, *, dicts: bool = False, also: Sequence[str] = ()) -> pa.Table:
    """``data`` as an Arrow table (see the module docstring); ``dicts`` accepts a list of
    dicts too. ``owner`` starts each message (``entity frame``); ``also`` names other
    kinds the caller takes before calling this (``a SQL query string``) for the message
    about an unsupported kind."""
    import pyarrow as pa

    pandas = sys.modules.get("pandas")
    polars = sys.modules.get("polars")
    table: pa.Table
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif pandas is not None and isinstance(data, pandas.DataFrame):
        _check_unique([str(c) for c in data.columns], owner)
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(
                f"{owner}: the pandas DataFrame cannot be converted to Arrow ({exc}). Fix: "
                "give each column one type (e.g. no mix of strings and numbers, one time zone)"
            ) from exc
    elif polars is not None and isinstance(data, polars.DataFrame):
        table = data.to_arrow()
    elif dicts and isinstance(data, list | tuple):
        table = _from_dicts(data, owner)
    else:
        kinds = [*(["a list of dicts"] if dicts else []), "a pandas or polars DataFrame",
                 "a pyarrow Table", *also]
        listing = ", ".join(kinds[:-1]) + f" or {kinds[-1]}"
        raise DataError(f"{owner}: expected {listing}, got {type(data).__name__}. Fix: pass "
                        "one of those")
    _check_unique(table.column_names, owner)
    return table


def _check_unique(names: list[str], owner: str) -> None:
    duplicated = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicated:
        raise DataError(f"{owner}: duplicate column name(s) {duplicated}. Fix: give each "
                        "column one name")


def _from_dicts(rows: list[Any] | tuple[Any, ...], owner: str) -> pa.Table:
    import pyarrow as pa

    names: dict[str, None] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise DataError(f"{owner}: rows[{index}] is {type(row).__name__}, not a dict of "
                            "column -> value. Fix: pass one dict per row")
        names.update(dict.fromkeys(row))
    for index, row in enumerate(rows):
        if len(row) != len(names):
            missing = [name for name in names if name not in row]
            raise DataError(f"{owner}: rows[{index}] has no {missing}, which other rows have. "
                            "Fix: give every row the same columns (None for a null value)")
    columns = {}
    for name in names:
        if not isinstance(name, str):
            raise DataError(f"{owner}: column name {name!r} is not a string. Fix: use the "
                            "column names as dict keys")
        values = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"{owner}: column '{name}' mixes values of different types "
                            f"({exc}). Fix: give every row the same type for '{name}'") from exc
        except OverflowError as exc:
            raise DataError(f"{owner}: column '{name}' holds an integer outside the 64-bit "
                            f"range. Fix: pass values that fit a 64-bit integer") from exc
    return pa.table(columns)
