"""The scheduler's run table on SQLite and PostgreSQL: the claim is a lock, leases expire."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headwater.registry.sql import SQLRegistryBackend
from headwater.scheduler.base import FAILED, RETRYING, RUNNING, SUCCEEDED, JobRun
from tests.registry.conftest import make_backend

T = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)


def claim(db: SQLRegistryBackend, *, slot: datetime = T, attempt: int = 1, owner: str = "a",
          now: datetime = T, job: str = "nightly", project: str = "proj") -> JobRun | None:
    return db.claim_run(project, job, slot, attempt, owner=owner, now=now,
                        lease_until=now + LEASE)


def test_a_slot_is_claimed_once(sql: SQLRegistryBackend) -> None:
    first = claim(sql, owner="a")
    assert first is not None and first.status == RUNNING and first.attempt == 1
    assert first.scheduled_for == T and first.lease_until == T + LEASE
    assert claim(sql, owner="b") is None  # same slot, same attempt: the other one skips
    assert claim(sql, owner="b", project="other") is not None  # projects are separate
    assert claim(sql, owner="b", job="hourly") is not None  # so are jobs
    assert sorted((r.job, r.owner) for r in sql.runs("proj")) == [
        ("hourly", "b"), ("nightly", "a")]


def test_an_older_or_equal_slot_is_refused_after_a_newer_one(sql: SQLRegistryBackend) -> None:
    assert claim(sql, slot=T + timedelta(hours=1)) is not None
    assert claim(sql, slot=T) is None  # a scheduler with a stale view
    assert claim(sql, slot=T + timedelta(hours=1, seconds=30)) is None  # the same minute
    assert claim(sql, slot=T + timedelta(hours=2)) is not None


def test_finish_records_status_duration_rows_error(sql: SQLRegistryBackend) -> None:
    run = claim(sql)
    assert run is not None
    done = T + timedelta(seconds=42)
    assert sql.finish_run("proj", run.id, owner="a", status=SUCCEEDED, now=done,
                          duration_s=41.5, rows=1234, detail="materialized")
    (stored,) = sql.runs("proj", "nightly")
    assert (stored.status, stored.duration_s, stored.rows, stored.detail, stored.error) == \
        (SUCCEEDED, 41.5, 1234, "materialized", None)
    assert stored.finished_at == done
    # a finished run cannot be finished again, nor by another owner
    assert not sql.finish_run("proj", run.id, owner="a", status=FAILED, now=done, duration_s=1)
    with pytest.raises(ValueError, match="status"):
        sql.finish_run("proj", run.id, owner="a", status="exploded", now=done, duration_s=1)


def test_retry_attempts_are_rows_and_last_runs_shows_the_latest(
        sql: SQLRegistryBackend) -> None:
    first = claim(sql)
    assert first is not None
    retry_at = T + timedelta(minutes=1)
    assert sql.finish_run("proj", first.id, owner="a", status=RETRYING, now=T, duration_s=0.1,
                          error="DataError: boom", retry_at=retry_at)
    assert sql.last_runs("proj")["nightly"].retry_at == retry_at
    second = claim(sql, attempt=2, owner="b", now=retry_at)
    assert second is not None and claim(sql, attempt=2, owner="a", now=retry_at) is None
    latest = sql.last_runs("proj")
    assert latest["nightly"].id == second.id and latest["nightly"].attempt == 2
    assert [(r.attempt, r.status, r.error) for r in sql.runs("proj", "nightly")] == [
        (2, RUNNING, None), (1, RETRYING, "DataError: boom")]


def test_heartbeat_keeps_the_lease_and_an_expired_one_is_taken_over(
        sql: SQLRegistryBackend) -> None:
    run = claim(sql, owner="dead")
    assert run is not None
    assert sql.heartbeat("proj", run.id, owner="dead", lease_until=T + 2 * LEASE)
    assert not sql.heartbeat("proj", run.id, owner="someone", lease_until=T + 9 * LEASE)
    renewed = sql.last_runs("proj")["nightly"]
    assert renewed.lease_until == T + 2 * LEASE
    # before the lease ends nobody can take it over
    early = T + LEASE + timedelta(minutes=1)
    assert sql.claim_run("proj", "nightly", T, 2, owner="b", now=early,
                         lease_until=early + LEASE, stale=renewed) is None
    # a take-over with an outdated view of the lease is refused too
    late = T + 3 * LEASE
    assert sql.claim_run("proj", "nightly", T, 2, owner="b", now=late,
                         lease_until=late + LEASE, stale=run) is None
    taken = sql.claim_run("proj", "nightly", T, 2, owner="b", now=late,
                          lease_until=late + LEASE, stale=renewed)
    assert taken is not None and taken.attempt == 2 and taken.owner == "b"
    old = next(r for r in sql.runs("proj") if r.attempt == 1)
    assert old.status == RETRYING and "lease expired" in (old.error or "")
    assert "'dead'" in (old.error or "")
    # the dead owner, back, cannot renew or finish what it lost
    assert not sql.heartbeat("proj", run.id, owner="dead", lease_until=late + LEASE)
    assert not sql.finish_run("proj", run.id, owner="dead", status=SUCCEEDED, now=late,
                              duration_s=1.0)


def test_expire_run_closes_a_run_without_attempts_left(sql: SQLRegistryBackend) -> None:
    run = claim(sql, owner="dead")
    assert run is not None
    assert not sql.expire_run("proj", run, now=T + LEASE)  # lease_until == now: still held
    assert sql.expire_run("proj", run, now=T + LEASE + timedelta(seconds=1))
    assert not sql.expire_run("proj", run, now=T + 2 * LEASE)  # once
    (closed,) = sql.runs("proj")
    assert closed.status == FAILED and closed.retry_at is None
    assert "lease expired" in (closed.error or "")


def test_concurrent_claims_from_many_connections_give_one_winner(
        backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    backends = [make_backend(backend_kind, tmp_path, request) for _ in range(4)]
    slots = [T + timedelta(minutes=i) for i in range(15)]
    winners: list[tuple[int, datetime]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(backends))

    def contend(index: int) -> None:
        db = backends[index]
        assert isinstance(db, SQLRegistryBackend)
        for slot in slots:
            barrier.wait()
            run = db.claim_run("proj", "job", slot, 1, owner=str(index), now=slot,
                               lease_until=slot + LEASE)
            if run is not None:
                with lock:
                    winners.append((index, slot))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(backends))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sorted(slot for _, slot in winners) == slots  # every slot exactly once
        first = backends[0]
        assert isinstance(first, SQLRegistryBackend)
        assert len(first.runs("proj", "job", limit=100)) == len(slots)
    finally:
        for db in backends:
            db.close()
