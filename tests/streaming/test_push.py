"""FeatureStore.push: online, offline and both; what each read path sees afterwards."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.config import OnlineSettings
from headwater.testing.processes import free_port
from tests.streaming.conftest import DRIVER, STAMP, T0, make_repo, views

LATER = T0 + timedelta(hours=2)


def row(driver: int = 1001, at: Any = LATER, conv: Any = 0.9, trips: Any = 9,
        **extra: Any) -> dict[str, Any]:
    return {"driver_id": driver, "event_timestamp": at, "conv_rate": conv, "trips": trips,
            **extra}


def full(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """A row with every column of the source (the one the views do not use too), as
    offline pushes take them."""
    return {**row(*args, **kwargs), "unused": "u"}


def online(store: hw.FeatureStore, *drivers: int, view: str = "stats") -> dict[str, list[Any]]:
    response = store.get_online_features([f"{view}:conv_rate", f"{view}:trips"],
                                         [{"driver_id": d} for d in drivers],
                                         now=LATER + timedelta(minutes=1))
    return {**response.to_dict(), "status": response.metadata[view].statuses}


def historical(store: hw.FeatureStore, *drivers: int, view: str = "stats") -> dict[str, Any]:
    entity_df = pa.table({"driver_id": pa.array(drivers, pa.int64()),
                          "event_timestamp": pa.array([LATER] * len(drivers), STAMP)})
    frame = store.get_historical_features(entity_df, [f"{view}:conv_rate", f"{view}:trips"])
    return frame.to_arrow().to_pydict()


def test_online_push_is_served_and_not_written_offline(store: hw.FeatureStore) -> None:
    result = store.push("stats", [row(), row(1002, conv=0.2, trips=2)])
    assert (result.view, result.to, result.rows, result.online_stored) == ("stats", "online",
                                                                           2, 2)
    assert result.offline_file is None
    got = online(store, 1001, 1002, 1003)
    assert got["conv_rate"] == [0.9, 0.2, None]
    assert got["trips"] == [9, 2, None]
    assert got["status"] == ["PRESENT", "PRESENT", "MISSING"]
    assert historical(store, 1001)["conv_rate"] == [0.5]  # the offline data is unchanged
    assert len(list((store.repo_path / "data" / "stats").iterdir())) == 1


def test_an_older_push_never_replaces_a_newer_online_value(store: hw.FeatureStore) -> None:
    store.push("stats", [row(conv=0.9)])
    older = store.push("stats", [row(at=LATER - timedelta(hours=1), conv=0.1)])
    assert older.online_stored == 0
    assert online(store, 1001)["conv_rate"] == [0.9]
    # within one push too: the newest row of each entity wins, whatever the row order
    store.push("stats", [row(1002, at=LATER, conv=0.7), row(1002, at=T0, conv=0.3)])
    assert online(store, 1002)["conv_rate"] == [0.7]
    events = store.get_online_features(["stats:conv_rate"], [{"driver_id": 1002}],
                                       now=LATER).metadata["stats"].event_timestamps
    assert events == [LATER]


def test_offline_push_adds_a_parquet_file_seen_by_training_frames(
        store: hw.FeatureStore) -> None:
    before = historical(store, 1001, 1002)
    result = store.push("stats", [full(conv=0.8, trips=8)], to="offline")
    assert result.online_stored == 0 and result.offline_file is not None
    path = result.offline_file
    assert path.parent == store.repo_path / "data" / "stats"
    assert path.name.startswith("push-") and path.suffix == ".parquet"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
    after = historical(store, 1001, 1002)
    assert after["conv_rate"] == [0.8, before["conv_rate"][1]]
    assert after["trips"] == [8, before["trips"][1]]
    # the file has the source's own layout: its column order and types
    written = pq.read_table(path)
    assert written.schema == pq.read_schema(path.parent / "part-0.parquet")
    assert written.column("unused").to_pylist() == ["u"]
    assert written.column("created").to_pylist() == [None]
    assert online(store, 1001)["status"] == ["MISSING"]


def test_both_writes_offline_and_online(store: hw.FeatureStore) -> None:
    result = store.push("stats", [full(conv=0.4, trips=4)], to="both")
    assert result.online_stored == 1 and result.offline_file is not None
    assert online(store, 1001)["conv_rate"] == [0.4]
    assert historical(store, 1001)["conv_rate"] == [0.4]


def test_a_glob_source_takes_pushes_in_its_folder(store: hw.FeatureStore) -> None:
    result = store.push("globbed", [full(conv=0.3)], to="offline")
    assert result.offline_file is not None
    assert result.offline_file.parent == store.repo_path / "data" / "globbed"
    assert historical(store, 1001, view="globbed")["conv_rate"] == [0.3]


def frames() -> dict[str, Any]:
    naive = pd.Timestamp(LATER.replace(tzinfo=None))
    return {
        "dicts": [full()],
        "dicts with ISO strings": [full(at="2024-01-01T04:00:00+02:00")],
        "dicts with naive ISO strings": [full(at="2024-01-01 02:00:00")],
        "pandas, naive time": pd.DataFrame({"driver_id": [1001], "event_timestamp": [naive],
                                            "conv_rate": [0.9], "trips": [9], "unused": ["u"]}),
        "polars": pl.DataFrame({"driver_id": [1001], "event_timestamp": [LATER],
                                "conv_rate": [0.9], "trips": [9], "unused": ["u"]}),
        "arrow, nanoseconds, other zone": pa.table({
            "driver_id": pa.array([1001], pa.int32()),
            "event_timestamp": pa.array([pd.Timestamp(LATER).tz_convert("Asia/Tokyo")],
                                        pa.timestamp("ns", "Asia/Tokyo")),
            "conv_rate": pa.array([0.9], pa.float32()),
            "trips": pa.array([9.0]),
            "unused": pa.array(["u"]).dictionary_encode(),
        }),
    }


@pytest.mark.parametrize("kind", list(frames()))
def test_every_kind_of_rows_gives_the_same_utc_values(store: hw.FeatureStore,
                                                      kind: str) -> None:
    store.push("stats", frames()[kind], to="both")
    got = store.get_online_features(["stats:conv_rate", "stats:trips"],
                                    [{"driver_id": 1001}], now=LATER)
    assert got.metadata["stats"].event_timestamps == [LATER]
    assert got.to_dict()["conv_rate"] == [pytest.approx(0.9)]
    assert got.to_dict()["trips"] == [9]
    assert historical(store, 1001)["trips"] == [9]


def test_created_is_optional_and_breaks_ties_when_given(store: hw.FeatureStore) -> None:
    store.push("stats", [full(conv=0.1, created=LATER + timedelta(seconds=5))], to="both")
    # same event time, no created time: sorts below the row with one, online and offline
    store.push("stats", [full(conv=0.2)], to="both")
    assert online(store, 1001)["conv_rate"] == [0.1]
    assert historical(store, 1001)["conv_rate"] == [0.1]
    store.push("stats", [full(conv=0.3, created=LATER + timedelta(seconds=9))], to="both")
    assert online(store, 1001)["conv_rate"] == [0.3]
    assert historical(store, 1001)["conv_rate"] == [0.3]


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ([{"driver_id": 1, "event_timestamp": LATER, "trips": 1}], "missing column(s) "
         "['conv_rate']"),
        ([row(speed=3)], "unknown column(s) ['speed']"),
        ([row(conv="fast")], "feature 'conv_rate' is declared Float64"),
        ([row(trips=1.5)], "feature 'trips' cannot be cast to Int64"),
        ([row(trips=2**40), row(trips=True)], "column 'trips' mixes values"),
        ([row(driver="1001")], "join key 'driver_id' is pushed as string"),
        ([row(driver=None)], "join key 'driver_id' has null values"),
        ([row(at=None)], "'event_timestamp' has null values"),
        ([row(at="yesterday")], "not an ISO-8601 timestamp"),
        ([row(at="2024-01-01T00:00:00Z"), row(at="2024-01-01 00:00:00")],
         "mixes values with a time zone"),
        ([row(at=3)], "time column 'event_timestamp' has type int64"),
        ([[1001, LATER, 0.5, 5]], "rows[0] is list"),
        (pd.DataFrame([[1001, LATER, 0.9, 9]], columns=["driver_id", "event_timestamp",
                                                       "trips", "trips"]),
         "duplicate column name(s) ['trips']"),
        ("driver_id,conv_rate", "expected a list of dicts"),
        ([full(), {"driver_id": 1002, "event_timestamp": LATER, "unused": "u"}],
         "rows[1] has no ['conv_rate', 'trips']"),
        ([full(trips=2**63)], "outside the 64-bit range"),
        ([full(at=pd.Timestamp("3000-01-01", tz="UTC"))], "after the current time"),
    ],
)
def test_bad_rows_are_data_errors_naming_the_column_and_fix(
        store: hw.FeatureStore, rows: Any, words: str) -> None:
    with pytest.raises(hw.DataError) as err:
        store.push("stats", rows, to="both")
    assert words in str(err.value)
    assert "Fix:" in str(err.value)
    assert len(list((store.repo_path / "data" / "stats").iterdir())) == 1  # nothing written
    assert online(store, 1001)["status"] == ["MISSING"]


@pytest.mark.parametrize(("view", "to", "words"), [
    ("single", "offline", "is a single file"),
    ("single", "both", "is a single file"),
    ("csv_stats", "offline", "is csv"),
    ("offline_only", "online", "not served online"),
    ("stats", "everywhere", "not a push target"),
])
def test_targets_a_view_cannot_take_are_definition_errors(
        store: hw.FeatureStore, view: str, to: str, words: str) -> None:
    with pytest.raises(hw.DefinitionError) as err:
        store.push(view, [row()], to=to)
    assert words in str(err.value)
    assert online(store, 1001, view="stats")["status"] == ["MISSING"]


def test_sql_and_wildcard_folder_sources_name_the_fix(store: hw.FeatureStore) -> None:
    from headwater.streaming.parquet_append import push_folder

    sql = hw.FeatureView("q", entities=[DRIVER], schema=[hw.Field("x", hw.Float64)],
                         source=hw.SQLSource("SELECT 1", "ts"))
    nested = dataclasses.replace(views()[0], source=hw.FileSource("data/*/x.parquet", "ts"))
    for view, words in ((sql, "SQL query"), (nested, "would not match the glob")):
        with pytest.raises(hw.DefinitionError, match="folder FileSource") as err:
            push_folder(view, store.repo_path)
        assert words in str(err.value)


def test_an_unknown_view_is_not_found(store: hw.FeatureStore) -> None:
    with pytest.raises(hw.NotFoundError, match="driver_stats"):
        store.push("driver_stats", [row()])


def test_no_rows_write_nothing(store: hw.FeatureStore) -> None:
    result = store.push("stats", [], to="both")
    assert (result.rows, result.online_stored, result.offline_file) == (0, 0, None)


def test_timestamp_and_array_features_round_trip(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "data" / "rich").mkdir()
    pq.write_table(pa.table({
        "driver_id": pa.array([1], pa.int64()), "event_timestamp": pa.array([T0], STAMP),
        "last_trip": pa.array([T0], STAMP), "scores": pa.array([[1.0]], pa.list_(pa.float64())),
    }), repo / "data" / "rich" / "part-0.parquet")
    view = hw.FeatureView("rich", entities=[DRIVER],
                          source=hw.FileSource("data/rich", "event_timestamp"))
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, view])
        store.push("rich", [{"driver_id": 7, "event_timestamp": LATER,
                             "last_trip": "2024-01-01T01:00:00Z", "scores": [1, 2.5]}],
                   to="both")
        got = store.get_online_features(["rich:last_trip", "rich:scores"],
                                        [{"driver_id": 7}], now=LATER).to_dict()
        assert got["last_trip"] == [T0 + timedelta(hours=1)]
        assert got["scores"] == [[1.0, 2.5]]
        frame = store.get_historical_features(
            pa.table({"driver_id": [7], "event_timestamp": pa.array([LATER], STAMP)}),
            ["rich:last_trip", "rich:scores"]).to_arrow().to_pydict()
        assert frame["scores"] == [[1.0, 2.5]]
        assert frame["last_trip"] == got["last_trip"]


def test_a_failed_online_write_keeps_the_rows_offline_for_materialization(
        tmp_path: Path) -> None:
    dead = f"online: {{type: redis, url: 'redis://127.0.0.1:{free_port()}/0'}}\n"
    repo = make_repo(tmp_path / "repo", dead)
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, *views()])
        with pytest.raises(hw.StoreUnavailableError) as err:
            store.push("stats", [full(conv=0.77)], to="both")
        assert "saved offline" in str(err.value) and "materialize" in str(err.value)
        assert historical(store, 1001)["conv_rate"] == [0.77]
    # the online store is back (here: another one); materializing the range serves the row
    settings = dataclasses.replace(
        store.settings, online=OnlineSettings("sqlite", path=str(tmp_path / "online.db")))
    with hw.FeatureStore(repo, settings=settings) as recovered:
        recovered.materialize(T0, LATER, views=["stats"])
        assert online(recovered, 1001)["conv_rate"] == [0.77]


def test_a_failed_file_write_leaves_no_file(store: hw.FeatureStore,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(hw.StoreUnavailableError, match="No space left"):
        store.push("stats", [full()], to="both")
    assert [p.name for p in (store.repo_path / "data" / "stats").iterdir()] == ["part-0.parquet"]
    assert online(store, 1001)["status"] == ["MISSING"]


def test_the_first_push_into_an_emptied_folder_keeps_the_declared_types(
        store: hw.FeatureStore) -> None:
    (store.repo_path / "data" / "stats" / "part-0.parquet").unlink()
    result = store.push("stats", [row(conv=0.25, trips=3)], to="offline")
    assert result.offline_file is not None
    assert pq.read_schema(result.offline_file).field("trips").type == pa.int64()
    assert historical(store, 1001)["conv_rate"] == [0.25]


def test_online_push_into_redis_keeps_the_newest_value(tmp_path: Path, redis_url: str) -> None:
    import uuid

    import redis

    project = f"push_{uuid.uuid4().hex[:10]}"
    repo = make_repo(tmp_path / "repo", f"online: {{type: redis, url: '{redis_url}'}}\n",
                     project)
    try:
        with hw.FeatureStore(repo) as store:
            store.apply([DRIVER, *views()])
            assert store.push("stats", [full(conv=0.9)], to="both").online_stored == 1
            assert store.push("stats", [row(at=T0, conv=0.1)]).online_stored == 0
            assert online(store, 1001)["conv_rate"] == [0.9]
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"hw:{project}:*", count=1000):
            client.delete(key)
        client.close()


def shared_source_store(repo: Path) -> hw.FeatureStore:
    """Views ``a_view`` (feature a) and ``b_view`` (feature b) on one folder source."""
    (repo / "data" / "shared").mkdir()
    pq.write_table(pa.table({
        "driver_id": pa.array([1001], pa.int64()), "event_timestamp": pa.array([T0], STAMP),
        "created": pa.array([T0], STAMP), "a": [1.0], "b": [10.0],
    }), repo / "data" / "shared" / "part-0.parquet")
    source = hw.FileSource("data/shared/", "event_timestamp", "created")
    store = hw.FeatureStore(repo)
    store.apply([DRIVER, *(hw.FeatureView(f"{c}_view", entities=[DRIVER], source=source,
                                          schema=[hw.Field(c, hw.Float64)]) for c in "ab")])
    return store


def test_an_offline_push_must_carry_every_column_of_the_source(tmp_path: Path) -> None:
    with shared_source_store(make_repo(tmp_path / "repo")) as store:
        folder = store.repo_path / "data" / "shared"
        only_a = {"driver_id": 1001, "event_timestamp": LATER, "a": 2.0}
        for to in ("offline", "both"):
            with pytest.raises(hw.DataError) as err:
                store.push("a_view", [only_a], to=to)
            message = str(err.value)
            assert "missing column(s) ['b']" in message and "full source rows" in message
            assert "to='online'" in message
            assert [p.name for p in folder.iterdir()] == ["part-0.parquet"]
        # the created column may be left out: the row is then older than any row with the
        # same event time that has one, for every view of the source
        store.push("a_view", [{**only_a, "b": 20.0}], to="offline")
        entity_df = pa.table({"driver_id": pa.array([1001], pa.int64()),
                              "event_timestamp": pa.array([LATER], STAMP)})
        frame = store.get_historical_features(entity_df, ["a_view:a", "b_view:b"]).to_arrow()
        assert frame.column("a").to_pylist() == [2.0]
        assert frame.column("b").to_pylist() == [20.0]
        # online pushes carry the view's columns only, as before
        assert store.push("a_view", [only_a]).online_stored == 1


def test_a_pushed_correction_wins_ties_offline_as_online(store: hw.FeatureStore) -> None:
    folder = store.repo_path / "data" / "stats"
    (folder / "part-0.parquet").rename(folder / "stats.parquet")  # sorts after 'push-'
    store.materialize(T0, LATER, views=["stats"])
    assert online(store, 1001)["conv_rate"] == [0.5]
    for conv in (0.55, 0.56):  # same key, event time and created time: the later push wins
        store.push("stats", [full(at=T0, conv=conv, created=T0)], to="both")
        assert historical(store, 1001)["conv_rate"] == [conv]
        assert online(store, 1001)["conv_rate"] == [conv]


@pytest.mark.parametrize("failure", [TypeError("unhashable"), hw.DataError("bad record")])
def test_any_online_failure_after_the_offline_write_says_the_rows_are_kept(
        store: hw.FeatureStore, monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    def broken(*args: object) -> int:
        raise failure

    monkeypatch.setattr(store.online, "write", broken)
    with pytest.raises(hw.HeadwaterError) as err:
        store.push("stats", [full(conv=0.66)], to="both")
    message = str(err.value)
    assert "saved offline" in message and "materialize" in message
    assert str(failure) in message
    assert err.value.__cause__ is failure
    assert historical(store, 1001)["conv_rate"] == [0.66]
    # online alone, nothing is durable: the failure is the store's own
    with pytest.raises(type(failure)) as alone:
        store.push("stats", [row()])
    assert alone.value is failure


def test_float32_overflow_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    narrow = hw.FeatureView("narrow", entities=[DRIVER],
                            schema=[hw.Field("trips", hw.Float32)],
                            source=hw.FileSource("data/stats/", "event_timestamp", "created"))
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, narrow])
        with pytest.raises(hw.DataError, match="beyond the Float32 range"):
            store.push("narrow", [{"driver_id": 1001, "event_timestamp": LATER,
                                   "trips": 1e300}])
        assert store.push("narrow", [{"driver_id": 1001, "event_timestamp": LATER,
                                      "trips": 2.5}]).online_stored == 1


def test_offline_only_views_are_not_read_online(store: hw.FeatureStore) -> None:
    with pytest.raises(hw.DefinitionError, match="not served online"):
        store.get_online_features(["offline_only:conv_rate"], [{"driver_id": 1001}])
    with pytest.raises(hw.DataError, match=r"entity_rows\[1\] is str"):
        store.get_online_features(["stats:conv_rate"], [{"driver_id": 1001}, "x"])


def test_a_push_to_a_source_defaults_to_both_so_materialize_keeps_the_events(
        tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from headwater.repo import init_repo, load_definitions

    start = datetime(2024, 1, 1, tzinfo=UTC)
    init_repo(tmp_path, "proj", n_drivers=2, n_hours=4, start=start)
    at = start + timedelta(hours=5)
    with hw.FeatureStore(tmp_path) as store:
        store.apply(load_definitions(tmp_path))
        result = store.push("trips", [{"driver_id": 1001, "ts": at - timedelta(minutes=1),
                                       "fare": 7.0, "rating": 4}])
        assert result.to == "both" and result.offline_files
        store.materialize(start, at, views=["driver_trips"])  # rebuilt from offline
        online = store.get_online_features(["driver_trips:last_fare"], [{"driver_id": 1001}],
                                           now=at)
        assert online.to_dict()["last_fare"] == [7.0]
        view_push = store.push("driver_stats", [{"driver_id": 1001, "event_timestamp": at,
                                                 "conv_rate": 0.5, "trips": 1}])
        assert view_push.to == "online" and view_push.offline_file is None
