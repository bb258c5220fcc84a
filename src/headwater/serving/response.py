"""OnlineResponse: the result of an online read, columnar, with per-view metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater.types import Array, DType, Timestamp, from_micros

if TYPE_CHECKING:
    import pyarrow as pa

PRESENT = "PRESENT"
MISSING = "MISSING"
EXPIRED = "EXPIRED"

_TIMESTAMP_LIST = Array(Timestamp)



@dataclass(frozen=True)
class ViewMetadata:
    """Per entity row of one view: the served row's event time and its status.

    ``status`` is ``PRESENT``, ``MISSING`` (never seen) or ``EXPIRED`` (older than the
    view's ttl; its values are null but its event time is kept)."""

    event_timestamps: list[datetime | None]
    statuses: list[str]


class OnlineResponse:
    """Feature values for a list of entity rows: entity key columns, then feature columns."""

    def __init__(self, entity_columns: dict[str, list[Any]], feature_columns: dict[str, list[Any]],
                 dtypes: dict[str, DType], metadata: dict[str, ViewMetadata]) -> None:
        self._entity = entity_columns
        self._features = feature_columns
        self._dtypes = dtypes
        self.metadata = metadata

    @property
    def entity_names(self) -> list[str]:
        """The join key columns, in first-use order."""
        return list(self._entity)

    @property
    def feature_names(self) -> list[str]:
        """The feature columns, in request order (``view__feature`` with full names)."""
        return list(self._features)

    def to_dict(self) -> dict[str, list[Any]]:
        """``{"driver_id": [...], "conv_rate": [...], ...}``; timestamps as UTC datetimes."""
        out = dict(self._entity)
        for name, values in self._features.items():
            dtype = self._dtypes[name]
            if dtype == Timestamp:
                out[name] = [from_micros(v) for v in values]
            elif dtype == _TIMESTAMP_LIST:
                out[name] = [None if v is None else [from_micros(t) for t in v] for v in values]
            else:
                out[name] = values
        return out

    def to_arrow(self, features: Sequence[str] | None = None) -> pa.Table:
        """The response as an Arrow table typed by the views' declared dtypes; with
        ``features``, only those feature columns (and no entity columns)."""
        import pyarrow as pa

        if features is not None:
            return pa.table({name: pa.array(self._features[name],
                                            type=self._dtypes[name].to_arrow())
                             for name in features})
        arrays = {name: pa.array(values) for name, values in self._entity.items()}
        for name, values in self._features.items():
            arrays[name] = pa.array(values, type=self._dtypes[name].to_arrow())
        return pa.table(arrays)

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def with_features(self, columns: dict[str, list[Any]], dtypes: dict[str, DType],
                      order: Sequence[str]) -> OnlineResponse:
        """The same entity rows and metadata with the feature columns ``order``, each taken
        from ``columns`` or else from this response (values as stored: timestamps as epoch
        microseconds). How on-demand features join an online read."""
        features = {name: columns[name] if name in columns else self._features[name]
                    for name in order}
        types = {name: dtypes[name] if name in dtypes else self._dtypes[name]
                 for name in order}
        return OnlineResponse(self._entity, features, types, self.metadata)

    def __len__(self) -> int:
        for columns in (self._entity, self._features):  # no entity columns: request data only
            for column in columns.values():
                return len(column)
        return 0

    def __repr__(self) -> str:
        columns = [*self._entity, *self._features]
        return f"OnlineResponse(rows={len(self)}, columns={columns})"
