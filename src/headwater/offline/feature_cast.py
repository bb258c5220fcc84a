"""Source values as their feature's declared dtype: one cast for every offline output.

Training frames (:mod:`~headwater.offline.result_stream`) and the latest rows that
materialization copies online (:mod:`~headwater.offline.latest`) both cast each feature
column from the type the source stores to the dtype the view declares. A value that does
not fit (a uint64 above 2^63 declared ``Int64``, a string declared ``Float64``) is the same
DataError on both paths, naming the view, the feature and the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa


def cast_feature(values: pa.Array, target: pa.DataType, *, view: str, feature: str) -> pa.Array:
    """``values`` (an array) of feature ``feature`` of view ``view`` as ``target``;
    unchanged when they have that type already."""
    import pyarrow as pa

    if values.type == target:
        return values
    try:
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"FeatureView '{view}': feature '{feature}': source values of type {values.type} "
            f"cannot be served as {target} ({exc}). Fix: declare the feature with the "
            "source's type, or convert the source column"
        ) from exc
