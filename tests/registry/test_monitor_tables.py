"""The monitor-run table on SQLite and PostgreSQL: runs round-trip with their findings,
come back newest first, and are filtered by monitor, time and project."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from headwater.errors import RegistryError
from headwater.monitoring.findings import Finding
from headwater.registry.monitor_tables import MonitorRun, monitor_tables
from headwater.registry.sql import SQLRegistryBackend

T = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def finding(target: str = "conv_rate", *, failed: bool = False, value: float | None = 0.1,
            severity: str = "warning", details: dict[str, object] | None = None) -> Finding:
    return Finding(
        check="quality.null_rate", subject="feature_view:driver_stats", target=target,
        value=value, threshold=0.05, failed=failed,
        message=f"{target}: null rate {value}", severity=severity,
        window_start=T - HOUR, window_end=T, details=details or {})


def record(db: SQLRegistryBackend, *, project: str = "proj", monitor: str = "nightly",
           started_at: datetime = T, findings: tuple[Finding, ...] = (),
           status: str | None = None, error: str | None = None,
           alerts_sent: int = 0) -> MonitorRun:
    if status is None:
        status = "alert" if any(f.failed for f in findings) else "ok"
    return db.record_monitor_run(
        project, monitor, started_at=started_at, finished_at=started_at + timedelta(seconds=3),
        window_start=started_at - HOUR, window_end=started_at, status=status,
        findings=findings, error=error, alerts_sent=alerts_sent)


def test_a_run_round_trips_with_its_findings(sql: SQLRegistryBackend) -> None:
    details = {"nulls": 12, "rows": 100, "p_value": 1e-12, "psi": math.inf,
               "reference": {"mean": 2.5, "edges": [0.0, 1.5, 3.0]}, "note": "é ∑"}
    findings = (finding("conv_rate", failed=True, value=0.12, severity="critical",
                        details=details),
                finding("trips", value=None, failed=True),
                finding("acc_rate", value=0.0))
    stored = sql.record_monitor_run(
        "proj", "nightly", started_at=T, finished_at=T + timedelta(seconds=3, microseconds=7),
        window_start=T - HOUR, window_end=T, status="alert", findings=findings,
        error=None, alerts_sent=2)
    assert stored.id > 0
    (read,) = sql.list_monitor_runs("proj")
    assert read == stored
    assert read.findings == findings  # datetimes, None value, nested details, inf: exact
    assert read.findings[0].window_start == T - HOUR
    assert read.findings[0].window_start.tzinfo is not None
    assert read.findings[0].details["psi"] == math.inf
    assert (read.project, read.monitor, read.status, read.error, read.alerts_sent) == (
        "proj", "nightly", "alert", None, 2)
    assert (read.started_at, read.finished_at, read.window_start, read.window_end) == (
        T, T + timedelta(seconds=3, microseconds=7), T - HOUR, T)
    assert [f.target for f in read.failed] == ["conv_rate", "trips"]
    as_json = json.loads(json.dumps(read.to_dict()))
    assert as_json["findings"] == [f.to_dict() for f in findings]
    assert as_json["started_at"] == "2024-03-01T02:00:00+00:00"
    assert as_json["window_start"] == "2024-03-01T01:00:00+00:00"


def test_error_run_without_window_and_times_in_other_zones(sql: SQLRegistryBackend) -> None:
    plus_two = timezone(timedelta(hours=2))
    run = sql.record_monitor_run(
        "proj", "nightly", started_at=T.astimezone(plus_two),
        finished_at=datetime(2024, 3, 1, 2, 0, 5), window_start=None, window_end=None,
        status="error", findings=(finding("trips", failed=True),),
        error="DataError: no rows in window")
    (read,) = sql.list_monitor_runs("proj", "nightly")
    assert read == run
    assert read.started_at == T and read.started_at.utcoffset() == timedelta(0)
    assert read.finished_at == T + timedelta(seconds=5)  # naive is taken as UTC
    assert (read.window_start, read.window_end) == (None, None)
    assert (read.status, read.error) == ("error", "DataError: no rows in window")


def test_newest_first_since_limit_and_monitor_filter(sql: SQLRegistryBackend) -> None:
    # started_at values out of insertion order, some with microseconds, one tie
    starts = [T + 3 * HOUR, T, T + timedelta(hours=1, microseconds=500), T + HOUR,
              T + 2 * HOUR, T + 2 * HOUR]
    monitors = ["a", "b", "a", "b", "a", "b"]
    runs = [record(sql, monitor=m, started_at=s,
                   findings=(finding(failed=i % 2 == 0),))
            for i, (m, s) in enumerate(zip(monitors, starts, strict=True))]
    record(sql, project="other", monitor="a", started_at=T + 5 * HOUR)

    def expected(monitor: str | None = None, since: datetime | None = None,
                 limit: int = 100) -> list[int]:
        chosen = [r for r in runs if (monitor is None or r.monitor == monitor)
                  and (since is None or r.started_at >= since)]
        chosen.sort(key=lambda r: (r.started_at, r.id), reverse=True)
        return [r.id for r in chosen[:limit]]

    def ids(monitor: str | None = None, since: datetime | None = None,
            limit: int = 100) -> list[int]:
        return [r.id for r in sql.list_monitor_runs("proj", monitor, since=since,
                                                     limit=limit)]

    assert ids() == expected() and len(ids()) == 6
    assert ids()[:3] == [runs[0].id, runs[5].id, runs[4].id]  # the tie: later recorded first
    for monitor in ("a", "b", None):
        for since in (None, T + HOUR, T + timedelta(hours=1, microseconds=1),
                      T + timedelta(hours=1, microseconds=500), T + 2 * HOUR, T + 9 * HOUR):
            for limit in (1, 2, 100):
                assert ids(monitor, since, limit) == expected(monitor, since, limit), (
                    monitor, since, limit)
    assert ids("a", T + HOUR) == [runs[0].id, runs[4].id, runs[2].id]
    assert ids(since=(T + 2 * HOUR).astimezone(timezone(timedelta(hours=-5)))) == [
        runs[0].id, runs[5].id, runs[4].id]
    assert sql.list_monitor_runs("proj", "missing") == []


def test_projects_are_isolated(sql: SQLRegistryBackend) -> None:
    mine = record(sql, project="proj", findings=(finding(failed=True),))
    theirs = record(sql, project="other", findings=(finding(),))
    assert sql.list_monitor_runs("proj") == [mine]
    assert sql.list_monitor_runs("other") == [theirs]
    assert sql.list_monitor_runs("other", "nightly") == [theirs]
    assert sql.list_monitor_runs("third") == []


@pytest.mark.parametrize(("status", "findings", "error", "problem"), [
    ("failed", (), None, "status must be one of ['ok', 'alert', 'error'], not 'failed'"),
    ("ok", (finding(failed=True),), None, "status 'ok' but 1 finding(s) failed"),
    ("alert", (finding(),), None, "status 'alert' but no finding failed"),
    ("error", (), None, "status 'error' needs the error text"),
])
def test_a_bad_status_is_refused_and_nothing_written(
        sql: SQLRegistryBackend, status: str, findings: tuple[Finding, ...],
        error: str | None, problem: str) -> None:
    with pytest.raises(ValueError, match="monitor run of 'nightly'") as info:
        record(sql, status=status, findings=findings, error=error)
    assert problem in str(info.value)
    assert sql.list_monitor_runs("proj") == []


def test_bad_times_counts_and_limits_are_refused(sql: SQLRegistryBackend) -> None:
    with pytest.raises(ValueError, match=r"finished_at .* is before started_at"):
        sql.record_monitor_run("proj", "m", started_at=T, finished_at=T - HOUR,
                               window_start=None, window_end=None, status="ok", findings=())
    with pytest.raises(ValueError, match=r"window_end .* is before window_start"):
        sql.record_monitor_run("proj", "m", started_at=T, finished_at=T, window_start=T,
                               window_end=T - HOUR, status="ok", findings=())
    with pytest.raises(ValueError, match="alerts_sent must be a count"):
        record(sql, alerts_sent=-1)
    with pytest.raises(ValueError, match="limit must be a positive integer, not 0"):
        sql.list_monitor_runs("proj", limit=0)
    with pytest.raises(RegistryError, match="a finding holds a value JSON cannot store"):
        record(sql, findings=(finding(details={"when": T}),))
    assert sql.list_monitor_runs("proj") == []


def test_numpy_scalars_in_details_are_stored_as_numbers(sql: SQLRegistryBackend) -> None:
    import numpy as np

    run = record(sql, findings=(finding(details={"count": np.int64(7),
                                                 "share": np.float64(0.25),
                                                 "flag": np.bool_(True)}),))
    (read,) = sql.list_monitor_runs("proj")
    assert dict(read.findings[0].details) == {"count": 7, "share": 0.25, "flag": True}
    assert type(read.findings[0].details["count"]) is int
    assert read.id == run.id


def test_monitor_tables_narrows_a_backend(sql: SQLRegistryBackend) -> None:
    assert monitor_tables(sql) is sql
    with pytest.raises(RegistryError, match="the registry backend object has no monitor tables"):
        monitor_tables(object())
