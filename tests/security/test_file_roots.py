"""FileSource paths read only inside the repo folder (and HEADWATER_FILE_ROOTS): '..',
absolute paths outside, symlinks and globs that lead outside are a DefinitionError naming
the path and the fix, when the definition is made or applied and at every read; offline
pushes never write outside either."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.errors import DefinitionError
from headwater.offline.source_reader import FILE_ROOTS_ENV

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DRIVER = hw.Entity("driver", join_keys=["driver_id"])


def rows(value: float) -> pa.Table:
    return pa.table({"driver_id": pa.array([1], pa.int64()),
                     "ts": pa.array([T0], pa.timestamp("us", tz="UTC")),
                     "rate": pa.array([value])})


def view(path: str | Path, name: str = "stats") -> hw.FeatureView:
    return hw.FeatureView(name, entities=[DRIVER], source=hw.FileSource(path, "ts"),
                          schema=[hw.Field("rate", hw.Float64)])


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the repo holding a 'secret' Parquet file."""
    folder = tmp_path / "outside"
    folder.mkdir()
    pq.write_table(rows(666.0), folder / "secret.parquet")
    return folder


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[hw.FeatureStore]:
    monkeypatch.delenv(FILE_ROOTS_ENV, raising=False)
    repo = tmp_path / "repo"
    (repo / "data" / "stats").mkdir(parents=True)
    (repo / "headwater.yaml").write_text("project: roots\n")
    pq.write_table(rows(1.0), repo / "data" / "stats" / "part.parquet")
    with hw.FeatureStore(repo) as opened:
        yield opened


def _refused(store: hw.FeatureStore, path: str | Path, shown: str) -> None:
    before = store.registry.backend.last_change_id(store.project)
    with pytest.raises(DefinitionError) as raised:
        store.apply([DRIVER, view(path)])
    message = str(raised.value)
    assert shown in message and "outside" in message, message
    assert "Fix: move or link the data inside the repo folder" in message
    assert FILE_ROOTS_ENV in message
    assert store.registry.backend.last_change_id(store.project) == before
    with pytest.raises(hw.NotFoundError):
        store.get_feature_view("stats")


def _read(store: hw.FeatureStore, name: str = "stats") -> list[float]:
    entities = pa.table({"driver_id": [1], "ts": [T0]})
    frame = store.get_historical_features(entities, [f"{name}:rate"]).to_arrow()
    values: list[float] = frame.column("rate").to_pylist()
    return values


@pytest.mark.parametrize("path", ["../outside/secret.parquet", "data/../../x.parquet",
                                  "../*/secret.parquet", "data/**/../../../x/"])
def test_dot_dot_is_refused_when_the_source_is_made(path: str) -> None:
    with pytest.raises(DefinitionError, match=r"climbs out of its folder with '\.\.'.*Fix"):
        hw.FileSource(path, "ts")


def test_a_path_inside_the_repo_reads_absolute_or_relative(store: hw.FeatureStore) -> None:
    store.apply([DRIVER, view("data/stats/"),
                 view(store.repo_path / "data" / "stats", name="absolute")])
    assert _read(store) == [1.0]
    assert _read(store, "absolute") == [1.0]


def test_an_absolute_path_outside_the_repo_is_refused(store: hw.FeatureStore,
                                                      outside: Path) -> None:
    _refused(store, outside / "secret.parquet", str(outside / "secret.parquet"))
    _refused(store, outside, str(outside))


def test_an_absolute_glob_outside_the_repo_is_refused(store: hw.FeatureStore,
                                                      outside: Path) -> None:
    _refused(store, f"{outside}/*.parquet", str(outside))


@pytest.mark.parametrize("link", ["file", "folder", "under_folder", "glob_match",
                                  "parent_folder"])
def test_symlinks_leading_outside_are_refused(store: hw.FeatureStore, outside: Path,
                                              link: str) -> None:
    data = store.repo_path / "data"
    if link == "file":
        (data / "link.parquet").symlink_to(outside / "secret.parquet")
        path = "data/link.parquet"
    elif link == "folder":
        (data / "linked").symlink_to(outside, target_is_directory=True)
        path = "data/linked/"
    elif link == "under_folder":
        (data / "stats" / "more.parquet").symlink_to(outside / "secret.parquet")
        path = "data/stats/"
    elif link == "glob_match":
        (data / "stats" / "more.parquet").symlink_to(outside / "secret.parquet")
        path = "data/stats/*.parquet"
    else:
        (data / "linked").symlink_to(outside, target_is_directory=True)
        path = "data/linked/secret.parquet"
    _refused(store, path, path.rstrip("/").split("/")[-1])


def test_a_source_that_later_leads_outside_is_refused_at_read(store: hw.FeatureStore,
                                                              outside: Path) -> None:
    store.apply([DRIVER, view("data/stats/")])
    assert _read(store) == [1.0]
    (store.repo_path / "data" / "stats" / "part.parquet").unlink()
    (store.repo_path / "data" / "stats" / "part.parquet").symlink_to(outside / "secret.parquet")
    with pytest.raises(DefinitionError, match=r"data/stats/.*outside.*Fix"):
        _read(store)


def test_offline_pushes_never_write_outside(store: hw.FeatureStore, outside: Path) -> None:
    store.apply([DRIVER, view("data/stats/")])
    folder = store.repo_path / "data" / "stats"
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
    folder.symlink_to(outside, target_is_directory=True)  # swapped after apply
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(DefinitionError, match="outside"):
        store.push("stats", [{"driver_id": 2, "ts": T0, "rate": 2.0}], to="offline")
    assert sorted(p.name for p in outside.iterdir()) == before


def test_folders_listed_in_the_environment_are_roots_too(store: hw.FeatureStore,
                                                         outside: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv(FILE_ROOTS_ENV, f"relative/ignored:{outside}")
    store.apply([DRIVER, view(outside / "secret.parquet")])
    assert _read(store) == [666.0]
    monkeypatch.delenv(FILE_ROOTS_ENV)
    with pytest.raises(DefinitionError, match="outside"):
        _read(store)
