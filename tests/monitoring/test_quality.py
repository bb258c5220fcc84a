"""Data quality checks: injected nulls, out-of-range values, a stale view, a type change
and a low-volume window are flagged exactly where injected, with the numbers a plain Python
count gives; through a real repo (Parquet files, the DuckDB engine) and on plain tables."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.errors import DataError, DefinitionError, NotFoundError
from headwater.monitoring.findings import Finding
from headwater.monitoring.profile import NumericProfile, Profile, profile
from headwater.monitoring.quality import (
    FRESHNESS,
    NULL_RATE,
    RANGE,
    SCHEMA,
    VOLUME,
    QualityResult,
    QualityRules,
    check_feature_view,
    check_quality,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DRIVERS = 40
DRIVER = hw.Entity("driver", join_keys=("driver_id",))
SCHEMA_FIELDS = (hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int64),
                 hw.Field("city", hw.String))
CITIES = ["paris", "lyon", "nice", "lille"]
Row = dict[str, Any]


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def make_rows() -> list[Row]:
    """Hourly events of 40 drivers for hours 0-43 (none after: the view goes stale), with
    nulls in conv_rate in hours 24-29, trips far out of range in hours 30-35, and only three
    drivers reporting in hours 36-41. Hours 0-23 and 42-43 are clean."""
    rng = random.Random(6)
    rows = []
    for hour in range(44):
        for driver in range(DRIVERS):
            if 36 <= hour < 42 and driver >= 3:
                continue
            conv: float | None = rng.uniform(0.0, 1.0)
            trips = rng.randrange(0, 100)
            if 24 <= hour < 30 and rng.random() < 0.2:
                conv = None
            if 30 <= hour < 36 and rng.random() < 0.1:
                trips = 1000 + rng.randrange(0, 500)
            rows.append({"driver_id": 1001 + driver,
                         "event_timestamp": hours(hour) + timedelta(minutes=driver),
                         "conv_rate": conv, "trips": trips, "city": rng.choice(CITIES)})
    return rows


ROWS = make_rows()
ARROW_SCHEMA = pa.schema([("driver_id", pa.int64()), ("event_timestamp", pa.timestamp("us", "UTC")),
                          ("conv_rate", pa.float64()), ("trips", pa.int64()),
                          ("city", pa.string())])


def table_of(rows: Sequence[Row], schema: pa.Schema = ARROW_SCHEMA) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=schema)


def between(rows: Sequence[Row], start: datetime, end: datetime) -> list[Row]:
    return [r for r in rows if start <= r["event_timestamp"] < end]


def reference() -> Profile:
    return profile(table_of(between(ROWS, hours(0), hours(24))))


# -- brute-force expectations -------------------------------------------------------------

def null_rate(rows: Sequence[Row], column: str) -> float:
    nulls = sum(1 for r in rows if r[column] is None
                or (isinstance(r[column], float) and math.isnan(r[column])))
    return nulls / len(rows)


def widened(rows: Sequence[Row], column: str, margin: float = 0.25) -> tuple[float, float]:
    values = [r[column] for r in rows if r[column] is not None]
    low, high = float(min(values)), float(max(values))
    return low - margin * (high - low), high + margin * (high - low)


def outside_share(rows: Sequence[Row], column: str, bounds: tuple[float, float]) -> float:
    values = [r[column] for r in rows if r[column] is not None]
    return sum(1 for v in values if v < bounds[0] or v > bounds[1]) / len(values)


def failures(result: QualityResult) -> set[tuple[str, str]]:
    return {(f.check, f.target) for f in result.failed}


def finding(result: QualityResult, check: str, target: str = "") -> Finding:
    found = [f for f in result.findings if f.check == check and f.target == target]
    assert len(found) == 1, (check, target, result.findings)
    return found[0]


def assert_expected_numbers(result: QualityResult, rows: Sequence[Row],
                            ref_rows: Sequence[Row]) -> None:
    """Every null-rate and range value and threshold equals the brute-force count."""
    assert result.rows == len(rows)
    assert finding(result, VOLUME).value == len(rows)
    for column in ("conv_rate", "trips", "city"):
        f = finding(result, NULL_RATE, column)
        assert f.value == null_rate(rows, column)
        assert f.threshold == pytest.approx(null_rate(ref_rows, column) + 0.05)
    for column in ("conv_rate", "trips"):
        bounds = widened(ref_rows, column)
        f = finding(result, RANGE, column)
        assert (f.details["low"], f.details["high"]) == pytest.approx(bounds)
        assert f.value == outside_share(rows, column, bounds)
    assert not [f for f in result.findings if f.check == RANGE and f.target == "city"]


# -- through a repo -----------------------------------------------------------------------

def make_repo(folder: Path, rows: Sequence[Row]) -> Path:
    """A repo whose view ``stats`` reads two Parquet files under data/stats."""
    (folder / "data" / "stats").mkdir(parents=True)
    (folder / "headwater.yaml").write_text("project: quality\n")
    write_source(folder, rows)
    with hw.FeatureStore(folder) as store:
        store.apply([DRIVER, view()])
    return folder


def write_source(folder: Path, rows: Sequence[Row], schema: pa.Schema = ARROW_SCHEMA) -> None:
    first = [r for r in rows if r["event_timestamp"] < hours(24)]
    rest = [r for r in rows if r["event_timestamp"] >= hours(24)]
    pq.write_table(table_of(first, schema), folder / "data" / "stats" / "part-0.parquet")
    pq.write_table(table_of(rest, schema), folder / "data" / "stats" / "part-1.parquet")


def view() -> hw.FeatureView:
    return hw.FeatureView("stats", entities=(DRIVER,),
                          source=hw.FileSource("data/stats", "event_timestamp"),
                          schema=SCHEMA_FIELDS)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("quality") / "repo", ROWS)


@pytest.fixture
def store(repo: Path) -> Iterator[hw.FeatureStore]:
    with hw.FeatureStore(repo) as opened:
        yield opened


# (window start hour, end hour, extra rules, the findings that must fail)
WINDOWS: dict[str, tuple[int, int, dict[str, Any], set[tuple[str, str]]]] = {
    "clean": (42, 44, {"freshness": timedelta(hours=2)}, set()),
    "nulls": (24, 30, {}, {(NULL_RATE, "conv_rate")}),
    "out_of_range": (30, 36, {}, {(RANGE, "trips")}),
    "low_volume": (36, 42, {"min_rows": 100}, {(VOLUME, "")}),
    "stale": (40, 48, {"freshness": timedelta(hours=2)}, {(FRESHNESS, "")}),
}


@pytest.mark.parametrize("case", list(WINDOWS))
def test_each_injected_problem_is_flagged_where_injected_and_nowhere_else(
        store: hw.FeatureStore, case: str) -> None:
    low, high, extra, expected = WINDOWS[case]
    start, end = hours(low), hours(high)
    result = check_feature_view(store, "stats", start=start, end=end,
                                rules=QualityRules(**extra), reference=reference())
    assert failures(result) == expected
    assert result.subject == "feature_view:stats"
    assert (result.window_start, result.window_end) == (start, end)
    assert_expected_numbers(result, between(ROWS, start, end), between(ROWS, hours(0), hours(24)))
    assert [(f.check, f.target, f.failed) for f in result.findings if f.check == SCHEMA] == [
        (SCHEMA, "conv_rate", False), (SCHEMA, "trips", False), (SCHEMA, "city", False)]
    for f in result.findings:
        assert (f.subject, f.window_start, f.window_end) == (result.subject, start, end)


def test_freshness_is_the_age_of_the_latest_event_at_the_end(store: hw.FeatureStore) -> None:
    latest = max(r["event_timestamp"] for r in ROWS)
    result = check_feature_view(store, "stats", start=hours(40), end=hours(48),
                                rules=QualityRules(freshness=timedelta(hours=2)))
    f = finding(result, FRESHNESS)
    assert result.latest_event == latest
    assert f.value == (hours(48) - latest).total_seconds()
    assert f.threshold == 7200.0
    assert f.failed and "stale" in f.message
    relaxed = check_feature_view(store, "stats", start=hours(40), end=hours(48),
                                 rules=QualityRules(freshness=timedelta(hours=5)))
    assert not finding(relaxed, FRESHNESS).failed


def test_an_empty_window_fails_volume_with_zero_and_freshness_reads_back_to_the_slo(
        store: hw.FeatureStore) -> None:
    latest = max(r["event_timestamp"] for r in ROWS)
    # no event in [44h, 48h), but one within 6 h of the end: fresh, yet no volume
    result = check_feature_view(store, "stats", start=hours(44), end=hours(48),
                                rules=QualityRules(freshness=timedelta(hours=6)))
    assert failures(result) == {(VOLUME, "")}
    assert finding(result, VOLUME).value == 0.0
    assert "empty" in finding(result, VOLUME).message
    assert finding(result, FRESHNESS).value == (hours(48) - latest).total_seconds()
    assert result.rows == 0
    assert not [f for f in result.findings if f.check in (NULL_RATE, RANGE)]
    # with a 1 h SLO there is no event in the last hour at all
    stale = check_feature_view(store, "stats", start=hours(44), end=hours(48),
                               rules=QualityRules(freshness=timedelta(hours=1)))
    assert failures(stale) == {(VOLUME, ""), (FRESHNESS, "")}
    assert finding(stale, FRESHNESS).value is None


def test_volume_relative_to_a_comparable_window(store: hw.FeatureStore) -> None:
    previous = profile(table_of(between(ROWS, hours(30), hours(36))))  # 240 rows
    rules = QualityRules(volume_tolerance=0.5)
    low = check_feature_view(store, "stats", start=hours(36), end=hours(42), rules=rules,
                             reference=previous)
    assert failures(low) == {(VOLUME, "")}
    assert finding(low, VOLUME).value == 18
    assert finding(low, VOLUME).threshold == 120.0
    same = check_feature_view(store, "stats", start=hours(18), end=hours(24), rules=rules,
                              reference=previous)
    assert failures(same) == set()


def test_unknown_view_and_empty_window_are_errors(store: hw.FeatureStore) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        check_feature_view(store, "nope", start=hours(0), end=hours(1))
    for start, end in ((hours(2), hours(2)), (hours(3), hours(2))):
        with pytest.raises(DataError, match="start must be before end"):
            check_feature_view(store, "stats", start=start, end=end)


def test_a_type_change_a_missing_column_and_an_untyped_column_fail_schema(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", ROWS)
    clean = [r for r in ROWS if r["event_timestamp"] >= hours(42)]
    changed = [{**r, "conv_rate": f"{r['conv_rate']:.3f}", "city": r["city"].encode()}
               for r in clean]
    schema = pa.schema([("driver_id", pa.int64()), ("event_timestamp", pa.timestamp("us", "UTC")),
                        ("conv_rate", pa.string()), ("city", pa.binary())])  # no trips
    for old in (repo / "data" / "stats").iterdir():
        old.unlink()
    write_source(repo, [{k: r[k] for k in schema.names} for r in changed], schema)
    with hw.FeatureStore(repo) as store:
        result = check_feature_view(store, "stats", start=hours(42), end=hours(44),
                                    rules=QualityRules(ranges={"trips": (0, 10)}))
    assert failures(result) == {(SCHEMA, "conv_rate"), (SCHEMA, "trips"), (SCHEMA, "city")}
    for f in result.failed:
        assert f.severity == "critical"
    conv = finding(result, SCHEMA, "conv_rate")
    assert conv.value == 0.0
    assert "declared Float64" in conv.message and "String" in conv.message
    assert finding(result, SCHEMA, "trips").value is None
    assert "missing" in finding(result, SCHEMA, "trips").message
    assert "binary" in finding(result, SCHEMA, "city").message
    # the string column's null rate is still measured; it is not range checked
    assert finding(result, NULL_RATE, "conv_rate").value == 0.0
    assert [(f.check, f.target) for f in result.findings if f.check != SCHEMA] == [
        (VOLUME, ""), (FRESHNESS, ""), (NULL_RATE, "conv_rate")]
    assert finding(result, VOLUME).value == len(clean)


def test_files_disagreeing_on_a_column_fail_its_schema_and_the_rest_is_checked(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", ROWS)
    later = [r for r in ROWS if r["event_timestamp"] >= hours(24)]
    changed = pa.schema([("driver_id", pa.int64()),
                         ("event_timestamp", pa.timestamp("us", "UTC")),
                         ("conv_rate", pa.string()), ("trips", pa.int32())])  # no city
    pq.write_table(table_of([{"driver_id": r["driver_id"],
                              "event_timestamp": r["event_timestamp"],
                              "conv_rate": None if r["conv_rate"] is None else "high",
                              "trips": r["trips"]} for r in later], changed),
                   repo / "data" / "stats" / "part-1.parquet")
    start, end = hours(30), hours(36)
    with hw.FeatureStore(repo) as store:
        result = check_feature_view(store, "stats", start=start, end=end,
                                    reference=reference())
    assert failures(result) == {(SCHEMA, "conv_rate"), (SCHEMA, "city"), (RANGE, "trips")}
    conv = finding(result, SCHEMA, "conv_rate")
    assert conv.value == 0.0
    assert "declared Float64 but holds String (Arrow string) in 1 of 2 files" in conv.message
    assert "part-1.parquet" in conv.message
    city = finding(result, SCHEMA, "city")
    assert city.value is None and "missing from 1 of 2 files" in city.message
    # trips (int32 in one file, int64 in the other) is read and checked as usual
    rows = between(ROWS, start, end)
    assert not finding(result, SCHEMA, "trips").failed
    assert finding(result, NULL_RATE, "trips").value == 0.0
    bounds = widened(between(ROWS, hours(0), hours(24)), "trips")
    assert finding(result, RANGE, "trips").value == outside_share(rows, "trips", bounds)
    assert [(f.check, f.target) for f in result.findings if f.check != SCHEMA] == [
        (VOLUME, ""), (FRESHNESS, ""), (NULL_RATE, "trips"), (RANGE, "trips")]
    assert finding(result, VOLUME).value == len(rows)


def test_a_view_with_widened_integers_passes_schema(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", ROWS)
    narrow = pa.schema([("driver_id", pa.int64()), ("event_timestamp", pa.timestamp("us", "UTC")),
                        ("conv_rate", pa.int32()), ("trips", pa.int32()), ("city", pa.string())])
    rows = [{**r, "conv_rate": int(r["conv_rate"] * 10)} for r in ROWS
            if r["event_timestamp"] >= hours(42)]
    for old in (repo / "data" / "stats").iterdir():
        old.unlink()
    write_source(repo, rows, narrow)
    with hw.FeatureStore(repo) as store:
        result = check_feature_view(store, "stats", start=hours(42), end=hours(44),
                                    rules=QualityRules(ranges={"conv_rate": (0, 9)}))
    assert failures(result) == set()
    assert finding(result, SCHEMA, "conv_rate").details == {
        "declared": "float64", "actual": "int32", "arrow_type": "int32"}
    assert finding(result, RANGE, "conv_rate").value == 0.0


def test_an_aggregated_view_checks_the_columns_it_aggregates(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", ROWS)
    totals = hw.FeatureView(
        "trip_totals", entities=(DRIVER,), source=hw.FileSource("data/stats", "event_timestamp"),
        aggregations=(hw.Aggregation("trips", "sum", timedelta(hours=1)),), online=False)
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, totals])
        result = check_feature_view(store, "trip_totals", start=hours(30), end=hours(36),
                                    reference=reference())
    rows = between(ROWS, hours(30), hours(36))
    assert failures(result) == {(RANGE, "trips")}
    assert [f.target for f in result.findings if f.check == SCHEMA] == ["trips"]
    bounds = widened(between(ROWS, hours(0), hours(24)), "trips")
    assert finding(result, RANGE, "trips").value == outside_share(rows, "trips", bounds)


# -- on plain tables ----------------------------------------------------------------------

def test_check_quality_matches_brute_force_on_arrow_and_pandas() -> None:
    ref_rows = between(ROWS, hours(0), hours(24))
    start, end = hours(20), hours(36)
    rows = between(ROWS, start, end)
    as_mapping = {f.name: f.dtype for f in SCHEMA_FIELDS}
    ref_table = table_of(ref_rows)
    for data, schema, ref in ((table_of(ROWS), SCHEMA_FIELDS, reference()),
                              (table_of(ROWS).to_pandas(), as_mapping, ref_table)):
        result = check_quality(data, subject="feature_view:stats", schema=schema,
                               timestamp_column="event_timestamp", start=start, end=end,
                               reference=ref)
        assert failures(result) == {(NULL_RATE, "conv_rate"), (RANGE, "trips")}
        assert_expected_numbers(result, rows, ref_rows)


def test_defaults_without_a_reference() -> None:
    rng = random.Random(1)
    rows = [{"ts": hours(i / 100), "a": None if i < 4 else rng.random(),
             "b": None if i < 6 else rng.random(), "c": rng.random() * 100}
            for i in range(100)]
    result = check_quality(pa.Table.from_pylist(rows), subject="feature_view:x",
                           timestamp_column="ts", start=hours(0), end=hours(1))
    # no reference: a null rate above 5% fails; no range without bounds
    assert failures(result) == {(NULL_RATE, "b")}
    assert finding(result, NULL_RATE, "a").value == 0.04
    assert finding(result, NULL_RATE, "b").value == 0.06
    assert finding(result, NULL_RATE, "a").threshold == 0.05
    assert not [f for f in result.findings if f.check == RANGE]
    assert [f.target for f in result.findings if f.check == SCHEMA] == ["a", "b", "c"]


def test_all_null_and_all_nan_columns_fail_whatever_the_bound() -> None:
    rows = [{"ts": hours(i / 10), "nothing": None, "nan": float("nan"), "fine": 1.0}
            for i in range(10)]
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("ts", pa.timestamp("us", "UTC")), ("nothing", pa.float64()), ("nan", pa.float64()),
        ("fine", pa.float64())]))
    result = check_quality(table, subject="feature_view:x", timestamp_column="ts",
                           start=hours(0), end=hours(1),
                           rules=QualityRules(max_null_rate=1.0, ranges={"nothing": (0, 1)}))
    assert failures(result) == {(NULL_RATE, "nothing"), (NULL_RATE, "nan")}
    assert finding(result, NULL_RATE, "nothing").value == 1.0
    assert "all 10 rows" in finding(result, NULL_RATE, "nan").message
    # nothing to range check in an all-null column
    assert not [f for f in result.findings if f.check == RANGE and f.target == "nothing"]


def test_explicit_ranges_and_a_tolerated_share_outside() -> None:
    values = [float(v) for v in range(-5, 95)] + [float("inf"), None]
    rows = [{"ts": hours(0) + timedelta(seconds=i), "v": v} for i, v in enumerate(values)]
    table = pa.Table.from_pylist(rows)
    expected = sum(1 for v in values if v is not None and (v < 0 or v > 90)) / 101
    strict = check_quality(table, subject="feature_view:x", timestamp_column="ts",
                           start=hours(0), end=hours(1),
                           rules=QualityRules(ranges={"v": (0.0, 90.0)}))
    assert finding(strict, RANGE, "v").value == expected
    assert finding(strict, RANGE, "v").details["outside"] == 5 + 4 + 1
    assert failures(strict) == {(RANGE, "v")}
    tolerant = check_quality(table, subject="feature_view:x", timestamp_column="ts",
                             start=hours(0), end=hours(1),
                             rules=QualityRules(ranges={"v": (0.0, None)},
                                                max_out_of_range=0.05))
    assert finding(tolerant, RANGE, "v").value == 5 / 101  # inf is under no upper bound
    assert failures(tolerant) == set()


def test_window_edges_naive_times_and_null_timestamps() -> None:
    naive = [datetime(2024, 1, 1, 0, 0), datetime(2024, 1, 1, 0, 59, 59, 999999),
             datetime(2024, 1, 1, 1, 0), datetime(2023, 12, 31, 23, 59), None]
    table = pa.table({"ts": pa.array(naive, pa.timestamp("ns")), "x": [1.0] * 5})
    result = check_quality(table, subject="feature_view:x", timestamp_column="ts",
                           start=datetime(2024, 1, 1), end=datetime(2024, 1, 1, 1))
    assert result.rows == 2  # start included, end excluded, the null time in no window
    assert result.window_start == hours(0)
    assert result.latest_event == datetime(2024, 1, 1, 0, 59, 59, 999999, tzinfo=UTC)
    volume = finding(result, VOLUME)
    assert volume.details["null_timestamps"] == 1 and "null 'ts'" in volume.message
    assert finding(result, FRESHNESS).value == 1e-6
    assert finding(result, FRESHNESS).threshold is None


def test_dictionary_columns_are_checked_as_their_values() -> None:
    table = pa.table({"ts": pa.array([hours(0)] * 3),
                      "city": pa.array(["a", None, "b"]).dictionary_encode()})
    result = check_quality(table, subject="feature_view:x", schema={"city": hw.String},
                           timestamp_column="ts", start=hours(0), end=hours(1),
                           rules=QualityRules(max_null_rate=0.5))
    assert failures(result) == set()
    assert finding(result, NULL_RATE, "city").value == 1 / 3


def test_result_to_dict_is_json_and_round_trips() -> None:
    result = check_quality(table_of(ROWS), subject="feature_view:stats",
                           schema=SCHEMA_FIELDS, timestamp_column="event_timestamp",
                           start=hours(24), end=hours(30), reference=reference(),
                           rules=QualityRules(freshness=timedelta(hours=1)))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["rows"] == result.rows and data["subject"] == "feature_view:stats"
    assert data["window_start"] == hours(24).isoformat()
    assert tuple(Finding.from_dict(f) for f in data["findings"]) == result.findings


def test_bad_input_is_a_clear_error() -> None:
    table = table_of(ROWS)
    args: dict[str, Any] = {"subject": "feature_view:stats", "start": hours(0),
                            "end": hours(1), "schema": SCHEMA_FIELDS}
    with pytest.raises(DataError, match="no timestamp column 'when'"):
        check_quality(table, timestamp_column="when", **args)
    with pytest.raises(DataError, match="timestamp column 'city' has type string"):
        check_quality(table, timestamp_column="city", **{**args, "schema": SCHEMA_FIELDS[:2]})
    with pytest.raises(DataError, match="names column 'trip'"):
        check_quality(table, timestamp_column="event_timestamp",
                      rules=QualityRules(ranges={"trip": (0, 1)}), **args)
    with pytest.raises(DataError, match="'city' of dtype String, which is not numeric"):
        check_quality(table, timestamp_column="event_timestamp",
                      rules=QualityRules(ranges={"city": (0, 1)}), **args)
    with pytest.raises(DataError, match="start must be before end"):
        check_quality(table, timestamp_column="event_timestamp",
                      **{**args, "end": hours(0)})
    with pytest.raises(DataError, match="names the timestamp column"):
        check_quality(table, timestamp_column="event_timestamp",
                      **{**args, "schema": {"event_timestamp": hw.Timestamp}})


@pytest.mark.parametrize(("rules", "field"), [
    ({"max_null_rate": 1.5}, "max_null_rate"),
    ({"max_null_rate": {"a": -0.1}}, "max_null_rate"),
    ({"null_rate_margin": float("nan")}, "null_rate_margin"),
    ({"ranges": {"a": (2.0, 1.0)}}, "ranges"),
    ({"ranges": {"a": 3.0}}, "ranges"),
    ({"range_margin": -1}, "range_margin"),
    ({"min_rows": 0}, "min_rows"),
    ({"min_rows": 5, "max_rows": 4}, "max_rows"),
    ({"freshness": timedelta(0)}, "freshness"),
    ({"schema": {"a": "float64"}}, "schema"),
])
def test_rules_are_validated(rules: dict[str, Any], field: str) -> None:
    with pytest.raises(DefinitionError, match=f"field '{field}'"):
        QualityRules(**rules)


def test_reference_thresholds_follow_the_profile() -> None:
    ref = reference()
    rules = QualityRules()
    conv = ref["conv_rate"]
    assert isinstance(conv, NumericProfile) and conv.min is not None and conv.max is not None
    span = conv.max - conv.min
    assert rules.range_bounds("conv_rate", conv) == (conv.min - 0.25 * span,
                                                     conv.max + 0.25 * span)
    constant = NumericProfile(3, 0, 0, 4.0, 4.0, 4.0, 0.0, (4.0,), (3,))
    assert rules.range_bounds("k", constant) == (3.0, 5.0)
    assert rules.null_threshold("conv_rate", 0.1) == pytest.approx(0.15)
    assert QualityRules(max_null_rate={"x": 0.3}).null_threshold("conv_rate", None) == 0.05
    low, high = QualityRules(volume_tolerance=0.1, max_rows=105).volume_bounds(100)
    assert low == pytest.approx(90.0)
    assert high == 105
