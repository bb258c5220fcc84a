"""The consistency law for windowed aggregations, streamed exactly once.

Random event histories per entity (few distinct times, so ties, equal timestamps and events on
tile boundaries are common; null values; created times that may be null) are written to the
offline source and delivered online by ``apply_events`` in random batches and orders (late and
out-of-order events included), some batches re-applied with the same ids, some redelivered
mixed with new events. Then at a ``T`` after every delivered event, for every one of the nine
functions over an integer, a float and (for last and count_distinct) a string column,
``get_online_features(now=T)`` equals ``get_historical_features`` at ``T`` and a brute-force
oracle: integers and counts exactly, floats within 1e-9 relative. Runs on SQLite and Redis.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import headwater as hw
from headwater.definitions.aggregation import FUNCTION_NAMES
from headwater.materialize.tiles import apply_events
from tests.online.conftest import delete_project_keys
from tests.property.window_oracle import Spec, window_value

T0 = datetime(2024, 1, 1, tzinfo=UTC)
UTC_US = pa.timestamp("us", "UTC")
CARD = hw.Entity("card", join_keys=["card_id"])
KEYS = [1, 2, 3]
UNKNOWN = 4
EVENT_SECONDS = st.sampled_from([0, 59, 60, 120, 150, 180, 240, 300, 360, 599, 600, 900])
INTS = st.one_of(st.none(), st.integers(-5, 5), st.sampled_from([10**12, -(10**12)]))
FLOATS = st.one_of(st.none(), st.integers(-4000, 4000).map(lambda n: n / 4))
STRINGS = st.one_of(st.none(), st.sampled_from(["a", "b", "", "ü"]))
WINDOWS = st.sampled_from([(1, 1), (2, 1), (2, 2), (3, 1), (4, 2), (6, 3), (10, 5)])  # minutes
AFTER = st.sampled_from([1, 30, 60, 61, 120, 240, 600, 3600])  # T after the last event, s


@dataclass(frozen=True)
class Event:
    key: int
    ts: int  # seconds from T0
    created: int | None
    x: int | None
    y: float | None
    s: str | None


@dataclass(frozen=True)
class Scenario:
    events: list[Event]
    with_created: bool
    specs: list[Spec]
    deliveries: list[list[int]]  # positions of events, per apply_events call
    after: int


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    with_created = draw(st.booleans())
    created = st.one_of(st.none(), st.sampled_from([0, 60, 120])) if with_created else st.none()
    events = draw(st.lists(st.builds(Event, st.sampled_from(KEYS), EVENT_SECONDS, created,
                                     INTS, FLOATS, STRINGS), min_size=1, max_size=40))
    specs = []
    for function in FUNCTION_NAMES:
        columns = ("x", "y", "s") if function in ("last", "count_distinct") else ("x", "y")
        for column in columns:
            w, h = draw(WINDOWS)
            specs.append(Spec(function, column, w * 60, h * 60))
    order = draw(st.permutations(range(len(events))))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(events) - 1)), max_size=5)))
    batches = [list(order[lo:hi]) for lo, hi in zip([0, *cuts], [*cuts, len(events)],
                                                     strict=True) if hi > lo]
    deliveries: list[list[int]] = []
    for i, batch in enumerate(batches):
        deliveries.append(batch)
        redeliver = draw(st.sampled_from(["no", "no", "same", "mixed"]))
        if redeliver == "same":  # a crash before the ack: the same events, the same ids
            deliveries.append(list(batch))
        elif redeliver == "mixed" and i + 1 < len(batches):
            deliveries.append(batch + batches[i + 1][:1])
    return Scenario(events, with_created, specs, deliveries, draw(AFTER))


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def write_repo(folder: Path, online: str, project: str, scenario: Scenario) -> hw.FeatureView:
    """The offline events (one Parquet file, rows in event order: the ingestion order) and
    the aggregated view over them."""
    (folder / "headwater.yaml").write_text(f"project: {project}\n{online}")
    events = scenario.events
    columns: dict[str, pa.Array] = {
        "card_id": pa.array([e.key for e in events], pa.int64()),
        "ts": pa.array([at(e.ts) for e in events], UTC_US),
        "x": pa.array([e.x for e in events], pa.int64()),
        "y": pa.array([e.y for e in events], pa.float64()),
        "s": pa.array([e.s for e in events], pa.string()),
    }
    if scenario.with_created:
        columns["created"] = pa.array([None if e.created is None else at(e.created)
                                       for e in events], UTC_US)
    pq.write_table(pa.table(columns), folder / "events.parquet")
    return hw.FeatureView(
        "card_txn", entities=[CARD],
        source=hw.FileSource("events.parquet", timestamp_field="ts",
                             created_timestamp_field="created" if scenario.with_created
                             else None),
        schema=[hw.Field("x", hw.Int64), hw.Field("y", hw.Float64), hw.Field("s", hw.String)],
        aggregations=[hw.Aggregation(s.column, s.function, timedelta(seconds=s.window),
                                     timedelta(seconds=s.granularity), name=s.name)
                      for s in scenario.specs])


def events_table(scenario: Scenario, positions: list[int]) -> pa.Table:
    """The events at ``positions`` as apply_events takes them; ``__hw_seq`` is the row
    in the offline file, the offline ingestion order."""
    chosen = [scenario.events[p] for p in positions]
    return pa.table({
        "card_id": pa.array([e.key for e in chosen], pa.int64()),
        "__hw_ts": pa.array([at(e.ts) for e in chosen], UTC_US),
        "__hw_created": pa.array([None if e.created is None or not scenario.with_created
                                  else at(e.created) for e in chosen], UTC_US),
        "__hw_seq": pa.array(positions, pa.int64()),
        "x": pa.array([e.x for e in chosen], pa.int64()),
        "y": pa.array([e.y for e in chosen], pa.float64()),
        "s": pa.array([e.s for e in chosen], pa.string()),
    })


def oracle(scenario: Scenario, spec: Spec, key: int, t: int) -> Any:
    """The function over ``key``'s events with floor_h(t - W) <= ts < t, by brute force."""
    tail = (t - spec.window) // spec.granularity * spec.granularity
    window = [((e.ts, e.created if e.created is not None and scenario.with_created
                else -math.inf, p), getattr(e, spec.column))
              for p, e in enumerate(scenario.events)
              if e.key == key and tail <= e.ts < t and getattr(e, spec.column) is not None]
    return window_value(spec.function, window, exact_float_sum=spec.column == "y")


def same(got: Any, expected: Any) -> bool:
    if got is None or expected is None:
        return got is None and expected is None
    if isinstance(got, float) or isinstance(expected, float):
        return math.isclose(float(got), float(expected), rel_tol=1e-9, abs_tol=1e-12)
    return bool(got == expected)


Backend = Callable[[], tuple[str, Callable[[str], None]]]


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The ``online:`` setting of a repo and a cleanup of a project's online data."""
    if request.param == "sqlite":
        return lambda: ("", lambda project: None)
    url = request.getfixturevalue("redis_url")
    return lambda: (f"online: {{type: redis, url: '{url}'}}\n",
                    lambda project: delete_project_keys(url, project))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario=scenarios())
def test_streamed_tiles_read_at_t_equal_the_offline_value(backend: Backend,
                                                          scenario: Scenario) -> None:
    online_setting, cleanup = backend()
    project = f"law_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as tmp, hw.FeatureStore(
            _repo(Path(tmp), online_setting, project)) as store:
        try:
            _check(store, Path(tmp), online_setting, project, scenario)
        finally:
            cleanup(project)


def _repo(folder: Path, online: str, project: str) -> Path:
    (folder / "headwater.yaml").write_text(f"project: {project}\n{online}")
    return folder


def _check(store: hw.FeatureStore, folder: Path, online: str, project: str,
           scenario: Scenario) -> None:
    view = write_repo(folder, online, project, scenario)
    store.apply([CARD, view])
    view = store.get_feature_view(view.name)
    generation = store.record_generation(view.name)
    applied = set()
    for positions in scenario.deliveries:
        ids = [f"event-{p}" for p in positions]
        result = apply_events(store.online, view, generation,
                              events_table(scenario, positions), scope="law", ids=ids)
        fresh = set(positions) - applied
        assert (result.applied, result.duplicates) == (len(fresh), len(positions) - len(fresh))
        applied |= fresh
    assert applied == set(range(len(scenario.events)))

    t = max(e.ts for e in scenario.events) + scenario.after
    names = [f"card_txn:{s.name}" for s in scenario.specs]
    rows = [{"card_id": k} for k in [*KEYS, UNKNOWN]]
    response = store.get_online_features(names, rows, now=at(t))
    got = response.to_dict()
    entity = pa.table({"card_id": pa.array([*KEYS, UNKNOWN], pa.int64()),
                       "event_timestamp": pa.array([at(t)] * (len(KEYS) + 1), UTC_US)})
    offline = store.get_historical_features(entity, names).to_arrow()
    seen = {e.key for e in scenario.events}
    meta = response.metadata["card_txn"]
    assert meta.statuses == ["PRESENT" if k in seen else "MISSING" for k in [*KEYS, UNKNOWN]]
    for k, stamp in zip([*KEYS, UNKNOWN], meta.event_timestamps, strict=True):
        latest = max((e.ts for e in scenario.events if e.key == k), default=None)
        assert stamp == (None if latest is None else at(latest))
    for spec in scenario.specs:
        online_values = got[spec.name]
        offline_values = offline.column(spec.name).to_pylist()
        for row, k in enumerate([*KEYS, UNKNOWN]):  # unseen: the empty window's value
            expected = oracle(scenario, spec, k, t)
            assert same(online_values[row], expected), (spec, k, online_values, expected)
            assert same(offline_values[row], expected), (spec, k, offline_values, expected)


def test_apply_events_counts_late_events_and_drops_only_them(tmp_path: Path) -> None:
    """An event older than every aggregation's allowed lateness changes nothing and is
    counted; one within it still counts."""
    scenario = Scenario(
        events=[Event(1, 3600, None, 1, 1.0, "a"), Event(1, 3600 - 600, None, 2, 2.0, "b"),
                Event(1, 3600 - 200, None, 3, 3.0, "c")],
        with_created=False, specs=[Spec("sum", "x", 300, 60), Spec("count", "x", 240, 60)],
        deliveries=[], after=1)
    with hw.FeatureStore(_repo(tmp_path, "", "late")) as store:
        view = write_repo(tmp_path, "", "late", scenario)
        store.apply([CARD, view])
        view = store.get_feature_view(view.name)
        generation = store.record_generation(view.name)
        first = apply_events(store.online, view, generation, events_table(scenario, [0]))
        assert (first.applied, first.late, first.records) == (1, 0, 1)
        late = apply_events(store.online, view, generation, events_table(scenario, [1, 2]))
        assert (late.applied, late.duplicates, late.late) == (2, 0, 1)
        names = ["card_txn:x_sum_300_60", "card_txn:x_count_240_60"]
        got = store.get_online_features(names, [{"card_id": 1}], now=at(3601)).to_dict()
        assert got["x_sum_300_60"] == [1 + 3] and got["x_count_240_60"] == [2]
