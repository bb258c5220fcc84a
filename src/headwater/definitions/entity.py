"""Entities: the things features describe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from headwater.definitions.base import (
    Definition,
    as_tuple,
    check_identifier,
    check_tags,
    spec_type,
)
from headwater.errors import DefinitionError


@spec_type
@dataclass(frozen=True)
class Entity(Definition):
    """A thing that features describe, identified by one or more join keys.

    >>> Entity("driver", join_keys=["driver_id"]).join_keys
    ('driver_id',)
    """

    kind: ClassVar[str] = "entity"

    name: str
    join_keys: tuple[str, ...] = field(default=())
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_identifier("Entity", "name", self.name)
        me = f"Entity '{self.name}'"
        try:
            keys = as_tuple(self.join_keys)
        except TypeError:
            raise DefinitionError(me, "join_keys", "expected a list of column names",
                                  "pass join_keys=['driver_id']") from None
        if not keys:
            raise DefinitionError(me, "join_keys", "no join key given",
                                  f"pass join_keys=['{self.name}_id']")
        for key in keys:
            check_identifier(me, "join_keys", key)
        if len(set(keys)) != len(keys):
            raise DefinitionError(me, "join_keys", f"duplicate join keys {list(keys)}",
                                  "list each key once")
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "tags", check_tags(me, self.tags))
