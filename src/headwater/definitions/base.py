"""What every definition shares: name checks and the spec codec.

Definitions are frozen dataclasses. They compile to a neutral JSON *spec* derived from their
dataclass fields, never hand-written per class: :func:`to_spec` encodes, :func:`from_spec`
decodes. A definition nested inside another top-level object (the entities of a feature view)
is stored as a reference by kind and name, and resolved again when the spec is read back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from headwater.errors import DefinitionError
from headwater.types import DType, parse_dtype

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # \Z: "$" would let a final newline in
_MAX_NAME = 128
RESERVED_PREFIX = "__hw"

JSON = Any
T = TypeVar("T")


def check_identifier(obj: str, field: str, value: object) -> str:
    """Return ``value`` if it is a valid identifier, else raise a DefinitionError naming it.

    Names reach SQL, file names and keys, so they are restricted to letters, digits and
    underscores, start with a letter or underscore, and never use the reserved ``__hw`` prefix.
    """
    if not isinstance(value, str):
        raise DefinitionError(obj, field, f"expected a string, got {type(value).__name__}",
                              "pass a name such as 'driver_id'")
    if not _IDENTIFIER.match(value) or len(value) > _MAX_NAME:
        raise DefinitionError(
            obj, field, f"'{value}' is not a valid identifier",
            "use letters, digits and underscores only, starting with a letter or underscore "
            f"(at most {_MAX_NAME} characters)",
        )
    if value.startswith(RESERVED_PREFIX):
        raise DefinitionError(obj, field, f"'{value}' uses the reserved prefix '{RESERVED_PREFIX}'",
                              "choose a name that does not start with '__hw'")
    return value


def check_tags(obj: str, tags: Any) -> dict[str, str]:
    """Tags map strings to strings; anything else is a DefinitionError."""
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise DefinitionError(obj, "tags", "tags must map strings to strings",
                              "pass tags={'team': 'risk'}")
    return dict(tags)


def describe(obj: object) -> str:
    """``FeatureView 'driver_stats'``: how messages name a definition."""
    name = getattr(obj, "name", None)
    return f"{type(obj).__name__} '{name}'" if name else type(obj).__name__


class Definition:
    """Base of top-level registry objects: they have a ``kind`` and a ``name``."""

    kind: ClassVar[str]
    name: str

    def spec(self) -> dict[str, JSON]:
        """The neutral spec stored in the registry."""
        return to_spec(self)

    def spec_hash(self) -> str:
        """A stable digest of the spec; a changed definition has a different hash. Computed
        once per object (definitions are frozen): serving keys its plan caches by it on
        every request."""
        cached = self.__dict__.get("_spec_hash")
        if cached is None:
            body = json.dumps(self.spec(), sort_keys=True, separators=(",", ":"))
            cached = hashlib.sha256(body.encode()).hexdigest()
            object.__setattr__(self, "_spec_hash", cached)
        return str(cached)


_TYPES: dict[str, type[Any]] = {}


def spec_type(cls: type[T]) -> type[T]:
    """Register a dataclass so that specs can name it with ``$type``."""
    _TYPES[cls.__name__] = cls
    return cls


def _encode(value: object, top: bool = False) -> JSON:
    if isinstance(value, DType):
        return {"$dtype": value.spec()}
    if isinstance(value, timedelta):
        return {"$timedelta_us": value // timedelta(microseconds=1)}
    if isinstance(value, Definition) and not top:
        return {"$ref": value.kind, "name": value.name}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        body = {
            f.name: _encode(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.init and f.metadata.get("spec", True)
        }
        return {"$type": type(value).__name__, **body}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot encode {type(value).__name__} in a spec")


Resolver = Callable[[str, str], Definition]


def _decode(value: JSON, resolve: Resolver) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v, resolve) for v in value)
    if not isinstance(value, dict):
        return value
    if "$dtype" in value:
        return parse_dtype(value["$dtype"])
    if "$timedelta_us" in value:
        return timedelta(microseconds=value["$timedelta_us"])
    if "$ref" in value:
        return resolve(value["$ref"], value["name"])
    if "$type" in value:
        cls = _TYPES[value["$type"]]
        kwargs = {k: _decode(v, resolve) for k, v in value.items() if k != "$type"}
        return cls(**kwargs)
    return {k: _decode(v, resolve) for k, v in value.items()}


def to_spec(obj: object) -> dict[str, JSON]:
    """Encode a definition into its JSON-compatible spec."""
    encoded = _encode(obj, top=True)
    if not isinstance(encoded, dict):
        raise TypeError(f"{type(obj).__name__} is not a definition")
    return encoded


def from_spec(spec: Mapping[str, JSON], resolve: Resolver) -> Any:
    """Decode a spec; ``resolve(kind, name)`` returns referenced top-level definitions."""
    return _decode(dict(spec), resolve)


def as_tuple(value: object) -> tuple[Any, ...]:
    """Lists given by users are stored as tuples so definitions stay immutable and hashable."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(value)
    raise TypeError
