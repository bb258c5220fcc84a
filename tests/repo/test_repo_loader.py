"""Loading definitions from a repo folder's Python files."""

from __future__ import annotations

import sys
from pathlib import Path
from textwrap import dedent

import pytest

import headwater as hw
from headwater.errors import DefinitionError, HeadwaterError
from headwater.repo import definition_files, load_definitions, load_repo

ENTITY = """
import headwater as hw

driver = hw.Entity("driver", join_keys=["driver_id"])
"""

VIEW = """
from datetime import timedelta

import headwater as hw
from entities import driver

source = hw.FileSource("data/stats.parquet", timestamp_field="ts")
stats = hw.FeatureView(name="stats", entities=[driver], source=source,
                       schema=[hw.Field("x", hw.Float64)], ttl=timedelta(hours=1))
service = hw.FeatureService("model", features=[stats])
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
    return folder


def test_collects_definitions_across_files_and_dedupes_imports(tmp_path: Path) -> None:
    write(tmp_path, {"entities.py": ENTITY, "views.py": VIEW})
    objects = load_definitions(tmp_path)
    # `driver` is reached from entities.py and from views.py (imported there): once.
    assert sorted((o.kind, o.name) for o in objects) == [
        ("entity", "driver"), ("feature_service", "model"), ("feature_view", "stats"),
    ]
    # Sources and fields are parts of a view, not top-level definitions.
    assert not any(isinstance(o, hw.FileSource | hw.Field) for o in objects)


def test_records_the_file_each_definition_was_found_in(tmp_path: Path) -> None:
    write(tmp_path, {"entities.py": ENTITY, "views.py": VIEW})
    found = {(d.obj.kind, d.obj.name): d.path.name for d in load_repo(tmp_path)}
    assert found[("entity", "driver")] == "entities.py"
    assert found[("feature_view", "stats")] == "views.py"


def test_equal_definitions_in_two_files_count_once(tmp_path: Path) -> None:
    write(tmp_path, {"a.py": ENTITY, "b.py": ENTITY})
    objects = load_definitions(tmp_path)
    assert [(o.kind, o.name) for o in objects] == [("entity", "driver")]


def test_different_definitions_with_one_name_name_both_files(tmp_path: Path) -> None:
    other = ENTITY.replace('["driver_id"]', '["driver_key"]')
    write(tmp_path, {"a.py": ENTITY, "sub/b.py": other})
    with pytest.raises(DefinitionError) as info:
        load_definitions(tmp_path)
    message = str(info.value)
    assert "Entity 'driver'" in message
    assert "a.py" in message and "sub/b.py" in message
    assert info.value.field == "name"


def test_same_name_of_different_kinds_is_fine(tmp_path: Path) -> None:
    write(tmp_path, {"entities.py": ENTITY, "views.py": VIEW.replace('"model"', '"driver"')})
    assert ("feature_service", "driver") in {(o.kind, o.name) for o in load_definitions(tmp_path)}


def test_skips_hidden_data_venv_private_and_test_files(tmp_path: Path) -> None:
    broken = "this is not python"
    write(tmp_path, {
        "features.py": ENTITY,
        "nested/more.py": "",
        ".hidden/x.py": broken,
        ".headwater/x.py": broken,
        "data/x.py": broken,
        "__pycache__/x.py": broken,
        "myenv/pyvenv.cfg": "home = /usr/bin\n",
        "myenv/lib/site.py": broken,
        "_private.py": broken,
        "test_features.py": broken,
        "notes.txt": broken,
    })
    files = [p.relative_to(tmp_path).as_posix() for p in definition_files(tmp_path)]
    assert files == ["features.py", "nested/more.py"]
    assert [o.name for o in load_definitions(tmp_path)] == ["driver"]


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, {"features.py": ENTITY, "broken.py": "x = 1\ndef oops(:\n"})
    with pytest.raises(HeadwaterError) as info:
        load_definitions(tmp_path)
    message = str(info.value)
    assert "broken.py" in message and "line 2" in message and "syntax" in message
    assert isinstance(info.value.__cause__, SyntaxError)


def test_failing_import_names_the_file_and_keeps_the_original_message(tmp_path: Path) -> None:
    write(tmp_path, {"features.py": "import headwater\nraise RuntimeError('no coffee')\n"})
    with pytest.raises(HeadwaterError) as info:
        load_definitions(tmp_path)
    assert "features.py" in str(info.value)
    assert "RuntimeError: no coffee" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_missing_module_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, {"features.py": "import no_such_module_for_headwater\n"})
    with pytest.raises(HeadwaterError, match=r"features\.py.*no_such_module_for_headwater"):
        load_definitions(tmp_path)


def test_invalid_definition_names_object_field_and_file(tmp_path: Path) -> None:
    bad = 'import headwater as hw\nd = hw.Entity("driver", join_keys=[])\n'
    write(tmp_path, {"features.py": bad})
    with pytest.raises(DefinitionError) as info:
        load_definitions(tmp_path)
    assert info.value.field == "join_keys"
    assert "Entity 'driver'" in str(info.value) and "features.py" in str(info.value)
    assert "Fix:" in str(info.value)


def test_sys_path_and_module_cache_are_restored(tmp_path: Path) -> None:
    write(tmp_path, {"entities.py": ENTITY, "views.py": VIEW})
    path_before = list(sys.path)
    modules_before = set(sys.modules)
    load_definitions(tmp_path)
    assert sys.path == path_before
    assert "entities" not in sys.modules
    assert not {m for m in set(sys.modules) - modules_before if m.startswith("_headwater_repo_")}


def test_sys_path_is_restored_after_a_failure(tmp_path: Path) -> None:
    write(tmp_path, {"features.py": "raise ValueError('bad')\n"})
    before = list(sys.path)
    with pytest.raises(HeadwaterError):
        load_definitions(tmp_path)
    assert sys.path == before


def test_each_load_reads_the_files_again(tmp_path: Path) -> None:
    write(tmp_path, {"entities.py": ENTITY, "views.py": VIEW})
    first = {o.name: o for o in load_definitions(tmp_path)}
    write(tmp_path, {"entities.py": ENTITY.replace('"driver_id"', '"driver_key"')})
    second = {o.name: o for o in load_definitions(tmp_path)}
    assert isinstance(first["driver"], hw.Entity) and isinstance(second["driver"], hw.Entity)
    assert first["driver"].join_keys == ("driver_id",)
    assert second["driver"].join_keys == ("driver_key",)
    stats = second["stats"]
    assert isinstance(stats, hw.FeatureView) and stats.join_keys == ("driver_key",)


def test_sibling_modules_of_two_repos_do_not_mix(tmp_path: Path) -> None:
    one = write(tmp_path / "one", {"entities.py": ENTITY, "views.py": VIEW})
    two = write(tmp_path / "two", {
        "entities.py": ENTITY.replace('driver = hw.Entity("driver"', 'rider = hw.Entity("rider"'),
        "views.py": VIEW.replace("[driver]", "[rider]").replace("import driver", "import rider"),
    })
    assert ("entity", "driver") in {(o.kind, o.name) for o in load_definitions(one)}
    assert {(o.kind, o.name) for o in load_definitions(two)} >= {("entity", "rider")}
    assert ("entity", "driver") not in {(o.kind, o.name) for o in load_definitions(two)}


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HeadwaterError, match="does not exist"):
        load_definitions(tmp_path / "nope")


def test_empty_folder_has_no_definitions(tmp_path: Path) -> None:
    assert load_definitions(tmp_path) == []
