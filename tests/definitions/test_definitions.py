"""Definitions validate at construction and round-trip through their spec."""

from __future__ import annotations

from datetime import timedelta

import pytest

import headwater as hw
from headwater.definitions import from_spec, parse_feature_ref
from headwater.definitions.feature_view import FeatureViewProjection

DRIVER = hw.Entity("driver", join_keys=["driver_id"])
SOURCE = hw.FileSource("data/x.parquet", timestamp_field="ts", created_timestamp_field="created")


def make_view(**overrides: object) -> hw.FeatureView:
    kwargs: dict[str, object] = {
        "name": "stats", "entities": [DRIVER], "source": SOURCE,
        "schema": [hw.Field("a", hw.Float64), hw.Field("b", hw.Array(hw.Int64))],
        "ttl": timedelta(hours=2), "tags": {"team": "risk"},
    }
    kwargs.update(overrides)
    return hw.FeatureView(**kwargs)  # type: ignore[arg-type]


def test_spec_round_trip_gives_an_equal_definition() -> None:
    view = make_view()
    back = from_spec(view.spec(), lambda kind, name: DRIVER)
    assert back == view
    assert back.spec_hash() == view.spec_hash()
    sql = hw.SQLSource("SELECT * FROM t;", timestamp_field="ts", connection="warehouse")
    assert from_spec(make_view(source=sql).spec(), lambda k, n: DRIVER).source == sql


def test_a_changed_definition_has_a_different_hash() -> None:
    assert make_view().spec_hash() != make_view(ttl=timedelta(hours=3)).spec_hash()


def test_definitions_are_frozen_and_hashable() -> None:
    view = make_view()
    with pytest.raises(AttributeError):
        view.name = "other"  # type: ignore[misc]
    assert len({view, make_view()}) == 1


@pytest.mark.parametrize(
    ("build", "field", "fix"),
    [
        (lambda: hw.Entity("driver id", join_keys=["x"]), "name", "letters, digits"),
        (lambda: hw.Entity("driver", join_keys=[]), "join_keys", "join_keys="),
        (lambda: hw.Entity("driver", join_keys=["a", "a"]), "join_keys", "once"),
        (lambda: hw.Entity("driver", join_keys=["a-b"]), "join_keys", "letters"),
        (lambda: hw.Entity("__hw_x", join_keys=["a"]), "name", "__hw"),
        (lambda: hw.Field("x", float), "dtype", "hw.Float64"),  # type: ignore[arg-type]
        (lambda: hw.FileSource("data/x.txt", timestamp_field="ts"), "format", "format="),
        (lambda: hw.FileSource("x.parquet", timestamp_field="ts; drop"), "timestamp_field",
         "letters"),
        (lambda: hw.FileSource("x.parquet", "ts", created_timestamp_field="ts"),
         "created_timestamp_field", "separate column"),
        (lambda: hw.SQLSource("  ", timestamp_field="ts"), "query", "SELECT"),
        (lambda: make_view(name="bad-name"), "name", "letters"),
        (lambda: make_view(entities=[]), "entities", "entities=[driver]"),
        (lambda: make_view(entities=["driver"]), "entities", "hw.Entity"),
        (lambda: make_view(source="data/x.parquet"), "source", "FileSource"),
        (lambda: make_view(ttl=timedelta(0)), "ttl", "ttl=timedelta(days=1)"),
        (lambda: make_view(schema=[hw.Field("a", hw.Int64), hw.Field("a", hw.Int64)]),
         "schema[1]", "once"),
        (lambda: make_view(schema=[hw.Field("driver_id", hw.Int64)]), "schema[0]",
         "remove join keys"),
        (lambda: make_view(schema=[hw.Field("ts", hw.Timestamp)]), "schema[0]",
         "time columns"),
        (lambda: make_view(schema=[]), "schema", "at least one"),
        (lambda: make_view(tags={"a": 1}), "tags", "tags={"),
        (lambda: hw.FeatureService("svc", features=[]), "features", "features="),
        (lambda: hw.FeatureService("svc", features=["no_colon"]), "features", "view:feature"),
        (lambda: hw.FeatureService("svc", features=[make_view(), "stats:a"]), "features",
         "each view once"),
        (lambda: hw.FeatureService("svc", features=[42]), "features", "feature views"),
    ],
)
def test_invalid_definitions_name_the_field_and_the_fix(build: object, field: str,
                                                        fix: str) -> None:
    with pytest.raises(hw.DefinitionError) as err:
        build()  # type: ignore[operator]
    assert err.value.field == field
    assert fix in err.value.fix
    assert f"field '{field}'" in str(err.value) and "Fix:" in str(err.value)


def test_file_source_formats_are_inferred() -> None:
    assert hw.FileSource("a/b.parquet", "ts").format == "parquet"
    assert hw.FileSource("a/b.csv", "ts").format == "csv"
    assert hw.FileSource("a/b.csv.gz", "ts").format == "csv"
    assert hw.FileSource("a/txns/", "ts").format == "parquet"
    assert hw.FileSource("a/*.parquet", "ts").format == "parquet"
    assert hw.FileSource("a/b.dat", "ts", format="csv").format == "csv"


@pytest.mark.parametrize(("path", "glob", "folder", "split"), [
    ("a/b.parquet", False, False, None),
    ("a/txns/", False, True, None),
    ("a/txns", False, True, None),
    ("a/v1.2/", False, True, None),
    ("a/*.parquet", True, False, ("a", ("*.parquet",))),
    ("a/b/**/*.parquet", True, False, ("a/b", ("**", "*.parquet"))),
    ("part-?.parquet", True, False, (".", ("part-?.parquet",))),
    ("a/[xy]/c.parquet", True, False, ("a", ("[xy]", "c.parquet"))),
])
def test_file_source_paths_are_files_folders_or_globs(path: str, glob: bool, folder: bool,
                                                      split: object) -> None:
    """The one place the readers and push learn what a FileSource path names."""
    source = hw.FileSource(path, "ts", format="parquet")
    assert source.is_glob is glob
    assert source.names_folder is folder
    parts = source.glob_parts()
    assert (None if parts is None else (parts[0].as_posix(), parts[1])) == split


def test_feature_service_merges_selections_per_view() -> None:
    view = make_view()
    svc = hw.FeatureService("svc", features=["stats:a", view[["b"]], "other:*"])
    assert svc.features == (FeatureViewProjection("stats", ("a", "b")),
                            FeatureViewProjection("other", None))


def test_feature_references_parse_once() -> None:
    assert parse_feature_ref("stats:a").feature == "a"
    assert parse_feature_ref("stats:*").feature is None
    for bad in ("stats", ":a", "stats:", "a:b:c", "st ats:a", "stats:a;drop"):
        with pytest.raises(hw.DefinitionError):
            parse_feature_ref(bad)


def test_dtypes_map_to_arrow_and_back() -> None:
    import pyarrow as pa

    from headwater.types import from_arrow, parse_dtype

    for dtype in (hw.Float64, hw.Float32, hw.Int64, hw.Int32, hw.String, hw.Bool,
                  hw.Timestamp, hw.Array(hw.Float32)):
        assert from_arrow(dtype.to_arrow()) == dtype
        assert parse_dtype(dtype.spec()) == dtype
    assert hw.Timestamp.to_arrow() == pa.timestamp("us", tz="UTC")
    with pytest.raises(ValueError, match="unknown dtype"):
        parse_dtype("decimal")
