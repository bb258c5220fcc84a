"""Windowed aggregation features offline, checked against a brute-force Python oracle.

Random event histories (few keys and few distinct times, so ties on key and time are
common, at tile boundaries too; null values and null keys; created times that may be null;
rows split over several Parquet files, which is the ingestion order) and random entity rows
(duplicates, unknown keys, null keys and times, times exactly on events and on tile
boundaries). Every one of the nine functions runs over an integer and a float column, with
random windows and granularities. The DuckDB engine must give, row for row, the function
over the events with ``floor_h(t - W) <= ts < t``: integers and counts exactly (count_distinct
is exact offline), floats within 1e-9 relative. The Spark engine (local mode, fewer
examples) must give the same. The float values are multiples of 1/4, so
their sums are exact and only division rounds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import headwater as hw
from headwater.config import parse_settings
from headwater.definitions.aggregation import FUNCTION_NAMES
from headwater.offline.base import OfflineEngine, ViewRequest
from headwater.offline.duckdb import DuckDBEngine
from tests.offline.engines import open_engine
from tests.property.window_oracle import Spec, window_value

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CARD = hw.Entity("card", join_keys=["card_id"])
UTC_US = pa.timestamp("us", "UTC")
MINUTE = 60  # times below are in seconds from T0
_folders = itertools.count()
SPARK_EXAMPLES = 8

KEYS = st.one_of(st.integers(1, 3), st.just(None))
EVENT_SECONDS = st.sampled_from([0, 60, 120, 150, 180, 240, 300, 360, 600])
ENTITY_SECONDS = st.one_of(st.sampled_from([0, 30, 60, 120, 180, 200, 240, 300, 360, 420,
                                            600, 660, 900]), st.none())
INTS = st.one_of(st.none(), st.integers(-5, 5), st.sampled_from([10**12, -(10**12)]))
FLOATS = st.one_of(st.none(), st.integers(-4000, 4000).map(lambda n: n / 4),
                   st.sampled_from([0.0, -0.0]))
OFFSETS = st.sampled_from([0, 1, 30, 60, 90, 120, 180, 300])
# (window, granularity) in minutes; the granularity divides the window
WINDOWS = st.sampled_from([(1, 1), (2, 1), (2, 2), (3, 1), (4, 2), (6, 3), (10, 5)])


@dataclass(frozen=True)
class Event:
    key: int | None
    ts: int  # seconds from T0
    created: int | None
    x: int | None
    y: float | None


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Event], tuple[int, ...], bool, list[Spec],
                                        list[tuple[int | None, int | None]]]:
    with_created = draw(st.booleans())
    created = st.one_of(st.none(), st.sampled_from([0, 60, 120])) if with_created else st.none()
    events = draw(st.lists(st.builds(Event, KEYS, EVENT_SECONDS, created, INTS, FLOATS),
                           min_size=1, max_size=40))
    splits = tuple(sorted(draw(st.sets(st.integers(1, max(1, len(events) - 1)),
                                       max_size=3)))) if len(events) > 1 else ()
    specs = []
    for function in FUNCTION_NAMES:
        for column in ("x", "y"):
            w, h = draw(WINDOWS)
            specs.append(Spec(function, column, w * MINUTE, h * MINUTE))
    # half the rows sit on an event's key at its time (the head excludes it) or shortly
    # after, so windows are rarely empty and their edges are hit
    near = st.builds(lambda e, d: (e.key, e.ts + d), st.sampled_from(events), OFFSETS)
    rows = draw(st.lists(st.one_of(near, st.tuples(KEYS, ENTITY_SECONDS)), min_size=1,
                         max_size=20))
    return events, splits, with_created, specs, rows


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def write_view(repo: Path, events: list[Event], splits: tuple[int, ...], with_created: bool,
               specs: list[Spec]) -> hw.FeatureView:
    folder = repo / f"events_{next(_folders)}"
    folder.mkdir()
    bounds = [0, *splits, len(events)]
    for part, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        chunk = events[lo:hi]
        columns: dict[str, pa.Array] = {
            "card_id": pa.array([e.key for e in chunk], pa.int64()),
            "ts": pa.array([at(e.ts) for e in chunk], UTC_US),
            "x": pa.array([e.x for e in chunk], pa.int64()),
            "y": pa.array([e.y for e in chunk], pa.float64()),
        }
        if with_created:
            columns["created"] = pa.array(
                [None if e.created is None else at(e.created) for e in chunk], UTC_US)
        pq.write_table(pa.table(columns), folder / f"part-{part}.parquet")
    source = hw.FileSource(str(folder.relative_to(repo)), timestamp_field="ts",
                           created_timestamp_field="created" if with_created else None)
    return hw.FeatureView(
        "card_txn", entities=[CARD], source=source,
        schema=[hw.Field("x", hw.Int64), hw.Field("y", hw.Float64)],
        aggregations=[hw.Aggregation(s.column, s.function, timedelta(seconds=s.window),
                                     timedelta(seconds=s.granularity), name=s.name)
                      for s in specs])


def oracle(events: list[Event], spec: Spec, key: int | None, t: int | None) -> object:
    """The function over the events of ``key`` with floor_h(t - W) <= ts < t, by brute force
    (events in ingestion order, so the position breaks ties of ``last``)."""
    if key is None or t is None:
        return None
    tail = (t - spec.window) // spec.granularity * spec.granularity
    window = [((e.ts, -math.inf if e.created is None else e.created, position),
               getattr(e, spec.column))
              for position, e in enumerate(events)
              if e.key == key and tail <= e.ts < t and getattr(e, spec.column) is not None]
    return window_value(spec.function, window, exact_float_sum=spec.column == "y")


def same(got: object, expected: object) -> bool:
    if isinstance(expected, float) and isinstance(got, float):
        return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)
    return got == expected and type(got) is type(expected)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("window_repo")
    (folder / "headwater.yaml").write_text("project: windows\n")
    return folder


@pytest.fixture(scope="module")
def engine(repo: Path) -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(parse_settings({"project": "windows"}, repo), batch_size=7)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def spark_engine(repo: Path) -> Iterator[OfflineEngine]:
    """The Spark engine on the test process's shared session."""
    engine = open_engine("spark", repo, "windows", batch_size=7)
    yield engine
    engine.close()


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario=scenarios())
def test_aggregations_match_the_oracle(
        repo: Path, engine: DuckDBEngine,
        scenario: tuple[list[Event], tuple[int, ...], bool, list[Spec],
                        list[tuple[int | None, int | None]]]) -> None:
    check_aggregations(repo, engine, scenario)


@settings(max_examples=SPARK_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario=scenarios())
def test_aggregations_match_the_oracle_on_spark(
        repo: Path, spark_engine: OfflineEngine,
        scenario: tuple[list[Event], tuple[int, ...], bool, list[Spec],
                        list[tuple[int | None, int | None]]]) -> None:
    check_aggregations(repo, spark_engine, scenario)


def check_aggregations(
        repo: Path, engine: OfflineEngine,
        scenario: tuple[list[Event], tuple[int, ...], bool, list[Spec],
                        list[tuple[int | None, int | None]]]) -> None:
    """Every aggregation of the scenario on ``engine`` is the oracle's, row for row."""
    events, splits, with_created, specs, rows = scenario
    view = write_view(repo, events, splits, with_created, specs)
    entity = pa.table({
        "card_id": pa.array([k for k, _ in rows], pa.int64()),
        "event_timestamp": pa.array([None if t is None else at(t) for _, t in rows], UTC_US),
        "label": list(range(len(rows))),
    })
    request = ViewRequest(view, view.features, view.feature_names)
    result = engine.get_historical_features(entity, [request]).to_arrow()

    assert result.select(entity.column_names).equals(entity)
    for spec in specs:
        got = result.column(spec.name).to_pylist()
        expected = [oracle(events, spec, k, t) for k, t in rows]
        if spec.column == "y" and spec.function in ("sum", "last", "min", "max"):
            expected = [None if v is None else float(v) for v in expected]
        assert all(same(g, e) for g, e in zip(got, expected, strict=True)), (
            spec, got, expected)
