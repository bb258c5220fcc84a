"""Fields and feature views: typed time series of feature rows per entity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar

from headwater.definitions.aggregation import Aggregation
from headwater.definitions.base import (
    Definition,
    as_tuple,
    check_identifier,
    check_tags,
    spec_type,
)
from headwater.definitions.entity import Entity
from headwater.definitions.sources import Source, batch_source_of
from headwater.errors import DefinitionError
from headwater.types import DType


@spec_type
@dataclass(frozen=True)
class Field:
    """A typed column of a feature view.

    >>> from headwater.types import Float64
    >>> Field("conv_rate", Float64).dtype
    Float64
    """

    name: str
    dtype: DType
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier("Field", "name", self.name)
        if not isinstance(self.dtype, DType):
            raise DefinitionError(
                f"Field '{self.name}'", "dtype", f"{self.dtype!r} is not a Headwater dtype",
                "use hw.Float64, hw.Int64, hw.String, hw.Bool, hw.Timestamp or hw.Array(...)",
            )


@spec_type
@dataclass(frozen=True)
class FeatureViewProjection:
    """A selection of features from one view; ``features=None`` selects all of them."""

    view: str
    features: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_identifier("FeatureViewProjection", "view", self.view)
        if self.features is not None:
            names = as_tuple(self.features)
            if not names:
                raise DefinitionError(f"projection of '{self.view}'", "features",
                                      "no feature selected", "name at least one feature")
            for name in names:
                check_identifier(f"projection of '{self.view}'", "features", name)
            object.__setattr__(self, "features", names)


@spec_type
@dataclass(frozen=True)
class FeatureView(Definition):
    """A time series of feature rows for one or more entities, read from a source.

    ``schema`` lists the features; when omitted, it is inferred from the source at
    ``apply`` (every column but the join keys and time columns). ``ttl`` bounds how old a
    value may be: at time ``t`` only rows with ``ts >= t - ttl`` are used.

    With ``aggregations`` the view's rows are events and its features are the windowed
    aggregates (:class:`~headwater.definitions.aggregation.Aggregation`); ``schema`` then
    types the aggregated columns (inferred at ``apply`` when omitted) and there is no ttl,
    since each aggregation has its window.
    """

    kind: ClassVar[str] = "feature_view"

    name: str
    entities: tuple[Entity, ...]
    source: Source
    schema: tuple[Field, ...] | None = None
    ttl: timedelta | None = None
    online: bool = True
    aggregations: tuple[Aggregation, ...] = ()
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict, hash=False)
    entity_columns: tuple[Field, ...] | None = None
    """The join keys' dtypes, read from the source at ``apply`` (not set by users)."""

    def __post_init__(self) -> None:
        check_identifier("FeatureView", "name", self.name)
        me = f"FeatureView '{self.name}'"
        self._check_entities(me)
        if not isinstance(self.source, Source):
            raise DefinitionError(me, "source", f"{self.source!r} is not a source",
                                  "pass hw.FileSource(...) or hw.SQLSource(...)")
        self._check_aggregations(me)
        if self.schema is not None:
            self._check_schema(me)
            self._check_aggregated_columns(me)
        if self.ttl is not None and (
            not isinstance(self.ttl, timedelta) or self.ttl <= timedelta(0)
        ):
            raise DefinitionError(me, "ttl", f"{self.ttl!r} is not a positive timedelta",
                                  "pass ttl=timedelta(days=1), or omit it for no ttl")
        object.__setattr__(self, "tags", check_tags(me, self.tags))

    def _check_entities(self, me: str) -> None:
        try:
            entities = as_tuple(self.entities)
        except TypeError:
            entities = (self.entities,)
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise DefinitionError(me, "entities", "expected a non-empty list of hw.Entity",
                                  "pass entities=[driver] with driver = hw.Entity(...)")
        keys = [k for e in entities for k in e.join_keys]
        if len(set(keys)) != len(keys):
            raise DefinitionError(me, "entities", f"entities share join keys {keys}",
                                  "give each entity distinct join key names")
        object.__setattr__(self, "entities", entities)

    def _check_schema(self, me: str) -> None:
        try:
            schema = as_tuple(self.schema)
        except TypeError:
            raise DefinitionError(me, "schema", "expected a list of hw.Field",
                                  "pass schema=[hw.Field('conv_rate', hw.Float64)]") from None
        if not schema:
            raise DefinitionError(me, "schema", "the schema is empty",
                                  "list at least one hw.Field, or omit schema to infer it")
        seen: set[str] = set()
        for position, item in enumerate(schema):
            if not isinstance(item, Field):
                raise DefinitionError(me, f"schema[{position}]", f"{item!r} is not a hw.Field",
                                      "pass hw.Field(name, dtype)")
            if item.name in seen:
                raise DefinitionError(me, f"schema[{position}]",
                                      f"feature '{item.name}' is listed twice",
                                      "list each feature once")
            if item.name in self.join_keys:
                raise DefinitionError(me, f"schema[{position}]",
                                      f"'{item.name}' is a join key, not a feature",
                                      "remove join keys from the schema; entities declare them")
            if item.name in self.source.time_columns():
                raise DefinitionError(me, f"schema[{position}]",
                                      f"'{item.name}' is the source's time column",
                                      "remove time columns from the schema")
            seen.add(item.name)
        object.__setattr__(self, "schema", schema)

    def _check_aggregations(self, me: str) -> None:
        try:
            aggregations = as_tuple(self.aggregations)
        except TypeError:
            aggregations = (self.aggregations,)
        if not all(isinstance(a, Aggregation) for a in aggregations):
            raise DefinitionError(me, "aggregations", "expected a list of hw.Aggregation",
                                  "pass aggregations=[hw.Aggregation('amount', 'sum', window)]")
        object.__setattr__(self, "aggregations", aggregations)
        names = [a.name for a in aggregations]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DefinitionError(me, "aggregations", f"feature names {twice} are used twice",
                                  "give each aggregation its own name=")
        if aggregations and self.ttl is not None:
            raise DefinitionError(me, "ttl", "a view with aggregations has no ttl",
                                  "remove ttl; each aggregation's window bounds its events")
        for position, agg in enumerate(aggregations):
            if agg.column in self.join_keys or agg.column == self.source.timestamp_field:
                raise DefinitionError(me, f"aggregations[{position}]",
                                      f"'{agg.column}' is a join key or the time column",
                                      "aggregate a value column of the source")

    def _check_aggregated_columns(self, me: str) -> None:
        names = {f.name for f in self.schema or ()}
        for position, agg in enumerate(self.aggregations):
            if agg.column not in names:
                raise DefinitionError(
                    me, f"aggregations[{position}]", f"column '{agg.column}' is not in the "
                    "schema", f"add hw.Field('{agg.column}', ...) to the schema, or omit the "
                    "schema to infer it")
        _ = self.features  # each aggregation accepts its column's dtype

    def key_dtype(self, key: str) -> DType | None:
        """The dtype of join key ``key`` as registered, or None before ``apply``."""
        for column in self.entity_columns or ():
            if column.name == key:
                return column.dtype
        return None

    @property
    def join_keys(self) -> tuple[str, ...]:
        """The join keys of all entities, in order."""
        return tuple(k for e in self.entities for k in e.join_keys)

    @property
    def batch_source(self) -> Source:
        """The source the offline engine reads (a push or stream source's batch source)."""
        return batch_source_of(self.source)

    @property
    def is_aggregated(self) -> bool:
        """Whether the view's features are windowed aggregations of its events."""
        return bool(self.aggregations)

    @property
    def features(self) -> tuple[Field, ...]:
        """The view's features; empty until the schema is known (given or inferred).

        For an aggregated view these are the aggregations, typed from their columns."""
        if not self.aggregations:
            return self.schema or ()
        if self.schema is None:
            return ()
        columns = {f.name: f.dtype for f in self.schema}
        return tuple(Field(a.name, a.output_dtype(columns[a.column]), a.description)
                     for a in self.aggregations)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def __getitem__(self, features: str | Sequence[str]) -> FeatureViewProjection:
        """``view[["a", "b"]]`` selects features for a FeatureService."""
        return FeatureViewProjection(self.name, as_tuple(features))
