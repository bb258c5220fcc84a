"""Fields and feature views: typed time series of feature rows per entity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar

from headwater.definitions.base import (
    Definition,
    as_tuple,
    check_identifier,
    check_tags,
    spec_type,
)
from headwater.definitions.entity import Entity
from headwater.definitions.sources import Source
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
    """

    kind: ClassVar[str] = "feature_view"

    name: str
    entities: tuple[Entity, ...]
    source: Source
    schema: tuple[Field, ...] | None = None
    ttl: timedelta | None = None
    online: bool = True
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
        if self.schema is not None:
            self._check_schema(me)
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
    def features(self) -> tuple[Field, ...]:
        """The view's features; empty until the schema is known (given or inferred)."""
        return self.schema or ()

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def __getitem__(self, features: str | Sequence[str]) -> FeatureViewProjection:
        """``view[["a", "b"]]`` selects features for a FeatureService."""
        return FeatureViewProjection(self.name, as_tuple(features))
