"""The point-in-time join law, checked against a brute-force pure-Python oracle.

Random histories for two views keyed by different entities (one by an integer, one by a
string and an integer) with many ties: equal event times, equal event and created times,
null created times, rows split across several Parquet files. Random entity rows with
duplicates, unknown keys, times before any feature row and exactly at ``t - ttl``. The
DuckDB engine must give, row for row and in order, what the oracle gives, with each
encoding of the ASOF order key: BIGINT (which this data fits), and HUGEINT and struct,
forced by allowing the narrower encodings no bits. The Spark engine (local mode, fewer
examples) must give the same.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
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
from headwater.offline import order_key
from headwater.offline.base import OfflineEngine, ViewRequest
from headwater.offline.duckdb import DuckDBEngine
from tests.offline.engines import open_engine

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DRIVER = hw.Entity("driver", join_keys=["driver_id"])
ROUTE = hw.Entity("route", join_keys=["origin", "carrier"])
KEY_TYPES = {"driver_id": pa.int64(), "origin": pa.string(), "carrier": pa.int64()}
_folders = itertools.count()
SPARK_EXAMPLES = 8


@dataclass(frozen=True)
class History:
    """One view's rows in ingestion order; ``splits`` cut them into files."""

    keys: tuple[str, ...]
    rows: list[tuple[tuple[object, ...], int, int | None]]  # (key, minute, created minute)
    with_created: bool
    ttl_minutes: int | None
    splits: tuple[int, ...]


def minute(m: int) -> datetime:
    return T0 + timedelta(minutes=m)


def histories(keys: tuple[str, ...], key_values: st.SearchStrategy[tuple[object, ...]]
              ) -> st.SearchStrategy[History]:
    @st.composite
    def build(draw: st.DrawFn) -> History:
        with_created = draw(st.booleans())
        created = st.one_of(st.none(), st.integers(0, 1)) if with_created else st.none()
        rows = draw(st.lists(st.tuples(key_values, EVENT_MINUTES, created), max_size=30))
        ttl = draw(st.one_of(st.none(), st.integers(1, 6)))
        splits = tuple(sorted(draw(st.sets(st.integers(1, max(1, len(rows) - 1)),
                                           max_size=3)))) if len(rows) > 1 else ()
        return History(keys, rows, with_created, ttl, splits)

    return build()


# Few keys and few event times, so that ties on (key, ts) and (key, ts, created) are common;
# entity times also fall between and after event times, and on t - ttl exactly.
EVENT_MINUTES = st.sampled_from([0, 2, 4, 6])
DRIVER_KEYS = st.tuples(st.integers(1, 3))
ROUTE_KEYS = st.tuples(st.sampled_from(["JFK", "LAX"]), st.integers(1, 2))


def write_view(repo: Path, name: str, entity: hw.Entity, history: History,
               value_type: pa.DataType) -> hw.FeatureView:
    """Write the history into Parquet files part-0, part-1, ... and define its view. The
    feature ``value`` of a row identifies it: its position in ingestion order."""
    folder = repo / f"{name}_{next(_folders)}"
    folder.mkdir()
    bounds = [0, *history.splits, len(history.rows)]
    for part, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        chunk = history.rows[lo:hi]
        columns: dict[str, pa.Array] = {}
        for i, key in enumerate(history.keys):
            columns[key] = pa.array([r[0][i] for r in chunk], KEY_TYPES[key])
        columns["ts"] = pa.array([minute(r[1]) for r in chunk], pa.timestamp("us", "UTC"))
        if history.with_created:
            columns["created"] = pa.array([None if r[2] is None else minute(r[2]) for r in chunk],
                                          pa.timestamp("us", "UTC"))
        values = list(range(lo, hi))
        columns["value"] = pa.array(
            [str(v) for v in values] if value_type == pa.string() else values, value_type)
        pq.write_table(pa.table(columns), folder / f"part-{part}.parquet")
    source = hw.FileSource(str(folder.relative_to(repo)) + "/", timestamp_field="ts",
                           created_timestamp_field="created" if history.with_created else None)
    dtype = hw.String if value_type == pa.string() else hw.Int64
    ttl = None if history.ttl_minutes is None else timedelta(minutes=history.ttl_minutes)
    return hw.FeatureView(name, entities=[entity], source=source,
                          schema=[hw.Field("value", dtype)], ttl=ttl)


def oracle(history: History, key: tuple[object, ...], t: int | None) -> int | None:
    """The rule, by brute force: the row with the greatest (ts, created, position) among
    rows with this key, ts <= t and, with a ttl, ts >= t - ttl. None sorts first."""
    if t is None:
        return None
    best: tuple[int, float, int] | None = None
    for position, (row_key, ts, created) in enumerate(history.rows):
        if row_key != key or ts > t:
            continue
        if history.ttl_minutes is not None and ts < t - history.ttl_minutes:
            continue
        rank = (ts, float("-inf") if created is None else created, position)
        if best is None or rank > best:
            best = rank
    return None if best is None else best[2]


ENTITY_ROWS = st.lists(
    st.tuples(DRIVER_KEYS, ROUTE_KEYS, st.one_of(st.integers(0, 9), st.none())),
    min_size=1, max_size=25,
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pit_repo")


@pytest.fixture(params=["bigint", "hugeint", "struct"])
def key_encoding(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param != "bigint":
        monkeypatch.setattr(order_key, "_BITS", 0)
    if request.param == "struct":
        monkeypatch.setattr(order_key, "_WIDE_BITS", 0)
    return str(request.param)


@pytest.fixture(scope="module")
def engine(repo: Path) -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(parse_settings({"project": "pit"}, repo), batch_size=7)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def spark_engine(repo: Path) -> Iterator[OfflineEngine]:
    """The Spark engine on the test process's shared session (fewer examples: each costs
    a few Spark jobs)."""
    engine = open_engine("spark", repo, "pit", batch_size=7)
    yield engine
    engine.close()


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drivers=histories(("driver_id",), DRIVER_KEYS),
       routes=histories(("origin", "carrier"), ROUTE_KEYS),
       rows=ENTITY_ROWS, naive=st.booleans())
def test_join_matches_the_oracle(repo: Path, engine: DuckDBEngine, key_encoding: str, *,
                                 drivers: History, routes: History,
                                 rows: Sequence[tuple[tuple[int], tuple[str, int], int | None]],
                                 naive: bool) -> None:
    check_join(repo, engine, drivers, routes, rows=rows, naive=naive)


@settings(max_examples=SPARK_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drivers=histories(("driver_id",), DRIVER_KEYS),
       routes=histories(("origin", "carrier"), ROUTE_KEYS),
       rows=ENTITY_ROWS, naive=st.booleans())
def test_join_matches_the_oracle_on_spark(
        repo: Path, spark_engine: OfflineEngine, *, drivers: History, routes: History,
        rows: Sequence[tuple[tuple[int], tuple[str, int], int | None]], naive: bool) -> None:
    check_join(repo, spark_engine, drivers, routes, rows=rows, naive=naive)


def check_join(repo: Path, engine: OfflineEngine, drivers: History, routes: History, *,
               rows: Sequence[tuple[tuple[int], tuple[str, int], int | None]],
               naive: bool) -> None:
    """The join of both views to ``rows`` on ``engine`` is the oracle's, row for row."""
    driver_view = write_view(repo, "drivers", DRIVER, drivers, pa.int64())
    route_view = write_view(repo, "routes", ROUTE, routes, pa.string())
    times = [None if t is None else minute(t) for _, _, t in rows]
    time_type = pa.timestamp("us") if naive else pa.timestamp("us", "UTC")
    entity = pa.table({
        "driver_id": pa.array([d[0] for d, _, _ in rows], pa.int64()),
        "origin": [r[0] for _, r, _ in rows],
        "carrier": pa.array([r[1] for _, r, _ in rows], pa.int64()),
        "event_timestamp": pa.array([None if t is None else t.replace(tzinfo=None) if naive
                                     else t for t in times], time_type),
        "label": list(range(len(rows))),
    })
    requests = [
        ViewRequest(driver_view, driver_view.features, ("driver_value",)),
        ViewRequest(route_view, route_view.features, ("route_value",)),
    ]
    result = engine.get_historical_features(entity, requests).to_arrow()

    assert result.num_rows == len(rows)
    assert result.select(entity.column_names).equals(entity)
    expected_driver = [oracle(drivers, d, t) for d, _, t in rows]
    expected_route = [oracle(routes, r, t) for _, r, t in rows]
    assert result.column("driver_value").to_pylist() == expected_driver
    assert result.column("route_value").to_pylist() == [
        None if v is None else str(v) for v in expected_route]


def latest_oracle(history: History, key: tuple[object, ...], start: int,
                  end: int) -> int | None:
    """latest_rows by brute force: the rule at ``end`` over rows with ``ts >= start``."""
    kept = History(history.keys, [r if r[1] >= start else (("none",), r[1], r[2])
                                  for r in history.rows],
                   history.with_created, None, history.splits)
    return oracle(kept, key, end)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drivers=histories(("driver_id",), DRIVER_KEYS), start=st.integers(0, 6),
       length=st.integers(0, 6))
def test_latest_rows_are_the_join_at_the_end(repo: Path, engine: DuckDBEngine,
                                             key_encoding: str, *, drivers: History,
                                             start: int, length: int) -> None:
    check_latest(repo, engine, drivers, start, length)


@settings(max_examples=SPARK_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drivers=histories(("driver_id",), DRIVER_KEYS), start=st.integers(0, 6),
       length=st.integers(0, 6))
def test_latest_rows_are_the_join_at_the_end_on_spark(
        repo: Path, spark_engine: OfflineEngine, *, drivers: History, start: int,
        length: int) -> None:
    check_latest(repo, spark_engine, drivers, start, length)


def check_latest(repo: Path, engine: OfflineEngine, drivers: History, start: int,
                 length: int) -> None:
    """latest_rows on ``engine`` is the oracle's."""
    view = write_view(repo, "latest", DRIVER, drivers, pa.int64())
    result = engine.latest_rows(view, minute(start), minute(start + length)).read_all()
    got = {row["driver_id"]: row["value"] for row in result.to_pylist()}
    expected = {k: latest_oracle(drivers, (k,), start, start + length) for k in (1, 2, 3)}
    assert got == {k: v for k, v in expected.items() if v is not None}
