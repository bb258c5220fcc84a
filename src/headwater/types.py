"""Feature dtypes and their Arrow types.

A dtype is a small frozen value. ``Float64``, ``Int64``, ``String`` ... are module-level
instances; ``Array(Float64)`` builds a list type. Each maps to one Arrow type, and
:func:`from_arrow` maps the other way when a schema is inferred from a source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class DType:
    """A feature value type. ``name`` is its stable spelling in specs (``float64``)."""

    name: str
    inner: DType | None = None

    def __str__(self) -> str:
        return self.spec()

    def __repr__(self) -> str:
        if self.inner is not None:
            return f"Array({self.inner!r})"
        return _REPR[self.name]

    def spec(self) -> str:
        """The dtype's spelling in a stored spec, e.g. ``float64`` or ``array<int64>``."""
        if self.inner is not None:
            return f"array<{self.inner.spec()}>"
        return self.name

    def to_arrow(self) -> pa.DataType:
        """The Arrow type values of this dtype are stored as."""
        import pyarrow as pa

        if self.inner is not None:
            return pa.list_(self.inner.to_arrow())
        factory = {
            "float64": pa.float64,
            "float32": pa.float32,
            "int64": pa.int64,
            "int32": pa.int32,
            "string": pa.string,
            "bool": pa.bool_,
        }.get(self.name)
        if factory is not None:
            return factory()
        return pa.timestamp("us", tz="UTC")

    @property
    def is_numeric(self) -> bool:
        return self.name in _NUMERIC


Float64 = DType("float64")
Float32 = DType("float32")
Int64 = DType("int64")
Int32 = DType("int32")
String = DType("string")
Bool = DType("bool")
Timestamp = DType("timestamp")

_SCALARS = {t.name: t for t in (Float64, Float32, Int64, Int32, String, Bool, Timestamp)}
_REPR = {
    "float64": "Float64",
    "float32": "Float32",
    "int64": "Int64",
    "int32": "Int32",
    "string": "String",
    "bool": "Bool",
    "timestamp": "Timestamp",
}
_NUMERIC = frozenset({"float64", "float32", "int64", "int32"})


def Array(inner: DType) -> DType:
    """A list-valued dtype, e.g. ``Array(Float64)`` for an embedding."""
    if not isinstance(inner, DType):
        from headwater.errors import DefinitionError

        raise DefinitionError("Array", "inner", f"{inner!r} is not a Headwater dtype",
                              "pass a dtype such as hw.Array(hw.Float64)")
    return DType("array", inner)


def parse_dtype(spec: str) -> DType:
    """Parse the spec spelling back into a dtype; raises ValueError for unknown names."""
    if spec.startswith("array<") and spec.endswith(">"):
        return Array(parse_dtype(spec[6:-1]))
    try:
        return _SCALARS[spec]
    except KeyError:
        known = ", ".join(sorted(_SCALARS))
        raise ValueError(f"unknown dtype '{spec}' (known: {known}, array<...>)") from None


def from_arrow(arrow_type: pa.DataType) -> DType | None:
    """The dtype an Arrow column is read as, or None when Headwater has no such dtype."""
    import pyarrow.types as pat

    if pat.is_float64(arrow_type) or pat.is_decimal(arrow_type):
        return Float64
    if pat.is_float32(arrow_type) or pat.is_float16(arrow_type):
        return Float32
    if pat.is_int64(arrow_type) or pat.is_uint32(arrow_type) or pat.is_uint64(arrow_type):
        return Int64
    if pat.is_integer(arrow_type):
        return Int32
    if pat.is_string(arrow_type) or pat.is_large_string(arrow_type):
        return String
    if pat.is_boolean(arrow_type):
        return Bool
    if pat.is_timestamp(arrow_type) or pat.is_date(arrow_type):
        return Timestamp
    if pat.is_list(arrow_type) or pat.is_large_list(arrow_type):
        inner = from_arrow(arrow_type.value_type)
        return None if inner is None else Array(inner)
    return None


def compatible(declared: DType, actual: DType) -> bool:
    """Whether source values of ``actual`` dtype can be served as ``declared`` without loss
    of meaning: integers widen to floats and wider integers; everything else must match."""
    if declared == actual:
        return True
    if declared.inner is not None and actual.inner is not None:
        return compatible(declared.inner, actual.inner)
    widen = {
        "float64": {"float32", "int64", "int32"},
        "float32": {"int32"},
        "int64": {"int32"},
    }
    return actual.name in widen.get(declared.name, set())


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of a UTC instant (naive datetimes are read as UTC)."""
    return (to_utc(moment) - EPOCH) // _MICROSECOND


def from_micros(value: int | None) -> datetime | None:
    """The UTC datetime of microseconds since the epoch (None stays None)."""
    return None if value is None else EPOCH + timedelta(microseconds=value)


def to_utc(value: datetime) -> datetime:
    """A UTC instant: naive datetimes are read as UTC, aware ones converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
