"""The scheduler loop on a real repo: due slots, records, missed slots, retries, take-over."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import headwater as hw
from headwater.registry.sql import SQLRegistryBackend
from headwater.scheduler.base import FAILED, RETRYING, RUNNING, SUCCEEDED, JobRun
from headwater.scheduler.cron import parse_cron
from headwater.scheduler.runner import Scheduler, latest_slot
from tests.scheduler.conftest import START, T0, Clock

MINUTE = timedelta(minutes=1)


def backend(store: hw.FeatureStore) -> SQLRegistryBackend:
    db = store.registry.backend
    assert isinstance(db, SQLRegistryBackend)
    return db


def runs(store: hw.FeatureStore, job: str) -> list[JobRun]:
    """Every attempt of ``job``, oldest first."""
    return list(reversed(backend(store).runs(store.project, job)))


def every_15(name: str = "every_15", **kwargs: object) -> hw.Job:
    return hw.Job(name, schedule="*/15 * * * *", action="materialize_incremental",
                  target="driver_stats", **kwargs)  # type: ignore[arg-type]


def test_a_due_slot_runs_once_and_is_recorded(store: hw.FeatureStore, clock: Clock) -> None:
    store.apply([every_15()])
    scheduler = Scheduler(store, owner="s1", now=clock)
    assert scheduler.run_due() == []  # 00:05: the first slot is 00:15
    clock.set(T0 + 10 * MINUTE)
    (run,) = scheduler.run_due()
    slot = T0 + 10 * MINUTE  # the 00:15 slot of day 2
    assert (run.job, run.scheduled_for, run.attempt, run.status) == ("every_15", slot, 1,
                                                                    SUCCEEDED)
    (stored,) = runs(store, "every_15")
    assert stored.status == SUCCEEDED and stored.owner == "s1"
    assert stored.rows == 4  # the 4 drivers' latest rows
    assert stored.duration_s is not None and stored.duration_s >= 0
    assert stored.finished_at == slot and stored.error is None
    assert "materialized up to" in (stored.detail or "")
    # the action ran: the view's watermark is the slot
    assert backend(store).watermarks(store.project)["driver_stats"][1] == slot
    assert scheduler.run_due() == []  # the same slot never again
    clock.set(T0 + 15 * MINUTE)
    assert scheduler.run_due() == []


def test_missed_slots_run_only_the_latest(store: hw.FeatureStore, clock: Clock) -> None:
    store.apply([every_15()])
    scheduler = Scheduler(store, owner="s1", now=clock)
    clock.set(T0 + 10 * MINUTE)
    scheduler.run_due()
    clock.set(T0 + 3 * timedelta(hours=1) + 2 * MINUTE)  # 03:07: 11 slots missed
    (run,) = scheduler.run_due()
    assert run.scheduled_for == T0 + 3 * timedelta(hours=1) - 5 * MINUTE  # 03:00
    assert [r.scheduled_for.strftime("%H:%M") for r in runs(store, "every_15")] == [
        "00:15", "03:00"]


def test_a_new_scheduler_catches_up_from_the_last_recorded_slot(
        store: hw.FeatureStore, clock: Clock) -> None:
    store.apply([every_15()])
    clock.set(T0 + 10 * MINUTE)
    Scheduler(store, owner="s1", now=clock).run_due()
    clock.set(T0 + 50 * MINUTE)  # 00:55, restarted: since is now, the 00:45 slot is due
    (run,) = Scheduler(store, owner="s2", now=clock).run_due()
    assert run.scheduled_for.strftime("%H:%M") == "00:45" and run.owner == "s2"


def test_a_failed_job_is_retried_with_backoff_then_reported(
        store: hw.FeatureStore, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    job = hw.Job("broken", schedule="*/15 * * * *", action="materialize_incremental",
                 target="no_such_view", retries=2, retry_backoff=timedelta(minutes=10))
    store.apply([job])
    scheduler = Scheduler(store, owner="s1", now=clock)
    slot = T0 + 10 * MINUTE
    clock.set(slot)
    (first,) = scheduler.run_due()
    assert first.status == RETRYING and first.retry_at == slot + 10 * MINUTE
    clock.set(slot + 9 * MINUTE)
    assert scheduler.run_due() == []  # backoff not over
    clock.set(slot + 10 * MINUTE)  # 00:25
    (second,) = scheduler.run_due()
    assert (second.scheduled_for, second.attempt, second.status) == (slot, 2, RETRYING)
    assert second.retry_at == slot + 30 * MINUTE  # the backoff doubled
    clock.set(slot + 29 * MINUTE)  # 00:44: the 00:30 slot waits for the retry
    assert scheduler.run_due() == []
    with caplog.at_level(logging.ERROR, logger="headwater.scheduler.runner"):
        clock.set(slot + 30 * MINUTE)
        (third,) = scheduler.run_due()
    assert (third.scheduled_for, third.attempt, third.status) == (slot, 3, FAILED)
    assert third.retry_at is None
    attempts = runs(store, "broken")
    assert [(r.attempt, r.status) for r in attempts] == [
        (1, RETRYING), (2, RETRYING), (3, FAILED)]
    assert all("NotFoundError" in (r.error or "") and "no_such_view" in (r.error or "")
               for r in attempts)
    assert all(r.duration_s is not None and r.rows is None for r in attempts)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "broken" in record.getMessage() and "no_such_view" in record.getMessage()
    # after the final failure the next slot is scheduled as usual
    (fresh,) = scheduler.run_due()
    assert (fresh.scheduled_for, fresh.attempt) == (slot + 30 * MINUTE, 1)


def test_training_whose_label_file_is_missing_fails_each_attempt(
        repo: Path, store: hw.FeatureStore, clock: Clock) -> None:
    (repo / "data" / "driver_labels.parquet").unlink()
    store.apply([hw.Job("retrain", schedule="0 * * * *", action="train",
                        target="driver_conversion", retries=1, retry_backoff=timedelta(0))])
    clock.set(T0 + 55 * MINUTE)  # 01:00
    scheduler = Scheduler(store, owner="s1", now=clock)
    (first,) = scheduler.run_due()
    assert first.status == RETRYING and first.retry_at == clock.t  # zero backoff
    (second,) = scheduler.run_due()
    assert second.status == FAILED and second.attempt == 2
    for run in runs(store, "retrain"):
        assert "driver_labels" in (run.error or ""), run.error


def test_a_monitor_job_runs_the_monitor_on_the_window_ending_at_its_slot(
        store: hw.FeatureStore, clock: Clock) -> None:
    store.apply([hw.Monitor("stats_quality", feature_view="driver_stats",
                            window=timedelta(hours=2), freshness=timedelta(hours=1)),
                 hw.Job("watch", schedule="*/5 * * * *", action="monitor",
                        target="stats_quality", retries=0)])
    clock.set(T0 + 5 * MINUTE)
    (run,) = Scheduler(store, owner="s1", now=clock).run_due()
    assert run.status == SUCCEEDED, run.error
    (monitored,) = store.monitor_runs("stats_quality")
    assert monitored.window_end == run.scheduled_for
    assert monitored.window_start == run.scheduled_for - timedelta(hours=2)
    # the data is hourly and goes on past the slot: fresh, rows in the window, no alert
    assert monitored.status == "ok", [f.message for f in monitored.findings if f.failed]
    checks = {f.check for f in monitored.findings}
    assert {"quality.volume", "quality.freshness", "quality.schema"} <= checks
    assert run.rows == len(monitored.findings)


def test_disabled_jobs_do_not_run(store: hw.FeatureStore, clock: Clock) -> None:
    store.apply([every_15(enabled=False)])
    clock.set(T0 + 10 * MINUTE)
    assert Scheduler(store, now=clock).run_due() == []
    assert runs(store, "every_15") == []


def test_a_run_whose_scheduler_died_is_taken_over_after_its_lease(
        store: hw.FeatureStore, clock: Clock) -> None:
    store.apply([every_15(retries=1)])
    slot = T0 + 10 * MINUTE
    lease = timedelta(minutes=2)
    # a scheduler claimed the slot, then died without renewing its lease
    dead = backend(store).claim_run(store.project, "every_15", slot, 1, owner="dead",
                                    now=slot, lease_until=slot + lease)
    assert dead is not None
    scheduler = Scheduler(store, owner="alive", now=clock, lease=lease)
    clock.set(slot + lease)
    assert scheduler.run_due() == []  # the lease still holds
    clock.set(slot + lease + MINUTE)
    (run,) = scheduler.run_due()
    assert (run.scheduled_for, run.attempt, run.owner, run.status) == (slot, 2, "alive",
                                                                       SUCCEEDED)
    first, second = runs(store, "every_15")
    assert first.status == RETRYING and "lease expired" in (first.error or "")
    assert second.status == SUCCEEDED


def test_a_dead_run_without_attempts_left_is_closed_as_failed(
        store: hw.FeatureStore, clock: Clock) -> None:
    store.apply([every_15(retries=0)])
    slot = T0 + 10 * MINUTE
    backend(store).claim_run(store.project, "every_15", slot, 1, owner="dead", now=slot,
                             lease_until=slot + MINUTE)
    clock.set(slot + 20 * MINUTE)  # 00:35: the 00:30 slot is due once the dead one is closed
    scheduler = Scheduler(store, owner="alive", now=clock)
    assert scheduler.run_due() == []
    (closed,) = runs(store, "every_15")
    assert closed.status == FAILED and "lease expired" in (closed.error or "")
    (run,) = scheduler.run_due()
    assert run.scheduled_for == slot + 15 * MINUTE and run.status == SUCCEEDED
    assert all(r.status != RUNNING for r in runs(store, "every_15"))


def test_latest_slot_searches_back_from_now() -> None:
    hourly = parse_cron("0 * * * *")
    assert latest_slot(hourly, START, START + timedelta(days=400, minutes=30)) == \
        START + timedelta(days=400)
    assert latest_slot(hourly, START, START + 59 * MINUTE) is None
    assert latest_slot(hourly, START, START + timedelta(hours=1)) == START + timedelta(hours=1)
    yearly = parse_cron("0 0 1 1 *")
    later = datetime(2030, 6, 1, tzinfo=START.tzinfo)
    assert latest_slot(yearly, START, later) == datetime(2030, 1, 1, tzinfo=START.tzinfo)


def test_run_forever_stops_after_the_current_job_when_asked(
        store: hw.FeatureStore, clock: Clock) -> None:
    store.apply([every_15(), every_15("other")])
    stop = threading.Event()
    seen: list[str] = []

    def on_run(run: JobRun) -> None:
        seen.append(run.job)
        stop.set()  # as SIGTERM does: the job in progress finishes, the next does not start

    scheduler = Scheduler(store, owner="s1", now=clock, on_run=on_run)
    clock.set(T0 + 10 * MINUTE)  # both jobs are due
    scheduler.run_forever(stop, poll_seconds=3600)
    assert seen == ["every_15"]
    assert [r.job for r in backend(store).runs(store.project)] == ["every_15"]


def test_run_forever_returns_once_the_clock_passes_until(
        store: hw.FeatureStore, clock: Clock) -> None:
    store.apply([every_15()])
    scheduler = Scheduler(store, owner="s1", now=clock)
    clock.set(T0 + 10 * MINUTE)
    scheduler.run_forever(threading.Event(), until=T0 + 10 * MINUTE, poll_seconds=3600)
    assert runs(store, "every_15") == []  # until had come: no pass at all


def test_the_lease_is_renewed_while_a_run_lasts(store: hw.FeatureStore) -> None:
    from headwater.scheduler.runner import _Heartbeat, utc_now

    scheduler = Scheduler(store, owner="s1", lease=timedelta(milliseconds=30))
    now = utc_now()
    run = backend(store).claim_run(store.project, "slow", now, 1, owner="s1", now=now,
                                   lease_until=now + scheduler.lease)
    assert run is not None
    with _Heartbeat(scheduler, run):  # renews every 10 ms; wait for it, up to 30 s
        deadline = time.monotonic() + 30
        while backend(store).last_runs(store.project)["slow"].lease_until == run.lease_until:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.01)
    assert backend(store).last_runs(store.project)["slow"].lease_until > run.lease_until
