"""Checks of feature views against their source schema (run at apply)."""

from __future__ import annotations

import pyarrow as pa
import pytest

import headwater as hw
from headwater.definitions.check import check_view

DRIVER = hw.Entity("driver", join_keys=["driver_id"])
SCHEMA = pa.schema([
    ("driver_id", pa.int64()), ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ("created", pa.timestamp("us")), ("conv_rate", pa.float64()), ("trips", pa.int32()),
    ("city", pa.string()),
])


def view(schema: list[hw.Field] | None = None, ts: str = "event_timestamp",
         created: str | None = "created", entity: hw.Entity = DRIVER) -> hw.FeatureView:
    return hw.FeatureView("stats", entities=[entity],
                          source=hw.FileSource("d.parquet", ts, created), schema=schema)


def test_schema_is_inferred_from_every_non_key_non_time_column() -> None:
    resolved = check_view(view(), SCHEMA)
    assert resolved.schema == (hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int32),
                               hw.Field("city", hw.String))


def test_declared_schema_is_kept_and_integers_may_widen() -> None:
    declared = [hw.Field("trips", hw.Int64), hw.Field("conv_rate", hw.Float64)]
    assert check_view(view(declared), SCHEMA).schema == tuple(declared)
    as_float = [hw.Field("trips", hw.Float32)]
    assert check_view(view(as_float), SCHEMA).schema == tuple(as_float)


def test_floats_are_never_narrowed_silently() -> None:
    with pytest.raises(hw.DefinitionError, match="declare it as Float64"):
        check_view(view([hw.Field("conv_rate", hw.Float32)]), SCHEMA)


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        (view([hw.Field("conv_rte", hw.Float64)]), "schema[0]", "has no column 'conv_rte'"),
        (view([hw.Field("city", hw.Float64)]), "schema[0]", "declared Float64"),
        (view([hw.Field("conv_rate", hw.Int64)]), "schema[0]", "declare it as Float64"),
        (view(ts="when"), "source.timestamp_field", "has no column 'when'"),
        (view(ts="conv_rate"), "source.timestamp_field", "not a timestamp"),
        (view(created="made"), "source.created_timestamp_field", "has no column 'made'"),
        (view(entity=hw.Entity("rider", join_keys=["rider_id"])), "entities",
         "join key 'rider_id' is absent"),
    ],
)
def test_mismatches_with_the_source_name_object_field_and_fix(bad: hw.FeatureView, field: str,
                                                              words: str) -> None:
    with pytest.raises(hw.DefinitionError) as err:
        check_view(bad, SCHEMA)
    assert err.value.obj == "FeatureView 'stats'"
    assert err.value.field == field
    assert words in str(err.value)
    assert err.value.fix


def test_join_key_dtypes_are_recorded() -> None:
    assert check_view(view(), SCHEMA).entity_columns == (hw.Field("driver_id", hw.Int64),)


def test_float_join_keys_are_refused() -> None:
    schema = SCHEMA.set(0, pa.field("driver_id", pa.float64()))
    with pytest.raises(hw.DefinitionError, match="integer or string"):
        check_view(view(), schema)
