"""``init_repo``: the example repo written by ``headwater init``."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.config import load_settings
from headwater.errors import ConfigError, HeadwaterError
from headwater.repo import init_repo, load_definitions, project_name


def test_writes_config_definitions_and_data(tmp_path: Path) -> None:
    result = init_repo(tmp_path / "my-repo", n_drivers=3, n_hours=5)
    repo = tmp_path / "my-repo"
    assert result.repo == repo.resolve()
    assert result.project == "my_repo"
    assert {p.as_posix() for p in result.files} == {
        "headwater.yaml", "features.py", "models.py", ".gitignore",
        "data/driver_stats.parquet", "data/driver_labels.parquet",
        "data/trips/date=2024-01-01/history.parquet",
    }
    assert load_settings(repo).project == "my_repo"
    table = pq.read_table(repo / "data/driver_stats.parquet")
    assert result.data_rows == table.num_rows == 15
    assert {"driver_id", "event_timestamp", "created", "conv_rate", "trips"} <= set(
        table.column_names)
    trips = pq.read_table(repo / "data/trips/date=2024-01-01/history.parquet")
    assert result.trip_events == trips.num_rows == 2 * 3 * 5
    assert {"driver_id", "ts", "fare", "rating"} <= set(trips.column_names)
    labels = pq.read_table(repo / "data/driver_labels.parquet")
    assert labels.column_names == ["driver_id", "event_timestamp", "label"]
    assert labels.num_rows == 2_000
    assert set(labels.column("label").to_pylist()) == {0, 1}


def test_trip_history_is_split_by_utc_date(tmp_path: Path) -> None:
    result = init_repo(tmp_path, "proj", n_drivers=2, n_hours=50)
    days = sorted(p.parent.name for p in result.files if p.name == "history.parquet")
    assert days == ["date=2024-01-01", "date=2024-01-02", "date=2024-01-03"]
    for day in days:
        table = pq.read_table(tmp_path / "data/trips" / day / "history.parquet")
        dates = {t.date().isoformat() for t in table.column("ts").to_pylist()}
        assert dates == {day.removeprefix("date=")}


def test_definitions_are_the_documented_ones(tmp_path: Path) -> None:
    init_repo(tmp_path, "proj", n_drivers=2, n_hours=2)
    objects = {(o.kind, o.name): o for o in load_definitions(tmp_path)}
    assert set(objects) == {("entity", "driver"), ("feature_view", "driver_stats"),
                            ("feature_view", "driver_trips"), ("feature_service", "driver_model"),
                            ("feature_service", "driver_live"), ("model", "driver_conversion"),
                            ("job", "nightly_features")}
    model = objects[("model", "driver_conversion")]
    assert isinstance(model, hw.ModelSpec)
    assert model.features == objects[("feature_service", "driver_model")]
    assert model.task == "classification" and model.label.column == "label"
    trips = objects[("feature_view", "driver_trips")]
    assert isinstance(trips, hw.FeatureView) and isinstance(trips.source, hw.StreamSource)
    assert [a.name for a in trips.aggregations] == ["trips_1h", "fare_mean_1h", "last_fare",
                                                     "rating_mean_7d"]
    view = objects[("feature_view", "driver_stats")]
    assert isinstance(view, hw.FeatureView)
    assert view.join_keys == ("driver_id",)
    assert view.feature_names == ("conv_rate", "trips")
    assert view.ttl is not None and view.ttl.days == 1
    assert isinstance(view.source, hw.FileSource)
    assert view.source.path == "data/driver_stats.parquet"


def test_never_overwrites(tmp_path: Path) -> None:
    init_repo(tmp_path, "proj", n_drivers=1, n_hours=2)
    before = (tmp_path / "features.py").read_text()
    with pytest.raises(HeadwaterError, match=r"already holds headwater\.yaml, features\.py"):
        init_repo(tmp_path, "proj", n_drivers=1, n_hours=2)
    assert (tmp_path / "features.py").read_text() == before


def test_keeps_an_existing_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("mine\n")
    result = init_repo(tmp_path, "proj", n_drivers=1, n_hours=2)
    assert (tmp_path / ".gitignore").read_text() == "mine\n"
    assert Path(".gitignore") not in result.files


def test_rejects_a_bad_project_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="project name 'my-project'"):
        init_repo(tmp_path, "my-project")
    assert not (tmp_path / "headwater.yaml").exists()


def test_rejects_a_file_as_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(HeadwaterError, match="not a folder"):
        init_repo(tmp_path / "file", "proj")


@pytest.mark.parametrize(("folder", "expected"), [
    ("my_repo", "my_repo"), ("my-repo", "my_repo"), ("2024 data", "_2024_data"),
])
def test_project_name_from_folder(folder: str, expected: str) -> None:
    assert project_name(folder) == expected
