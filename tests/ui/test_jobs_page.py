"""The jobs page over a real repo whose jobs the real Scheduler ran on a test clock: a job
that succeeded, one waiting for a retry, one that failed and was deleted since, one
disabled. The page shows each job's schedule, next time and last run, and every run's
status, duration, rows and error as the registry holds them; escaping, no external URL,
unknown names as 404 pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.registry.sql import SQLRegistryBackend
from headwater.repo import load_repo
from headwater.scheduler.base import FAILED, RETRYING, SUCCEEDED, JobRun
from headwater.scheduler.cron import parse_cron
from headwater.scheduler.runner import Scheduler
from headwater.ui.html import duration, when
from tests.scheduler.conftest import T0, Clock, make_repo
from tests.ui.test_models_page import get, no_external_url

MINUTE = timedelta(minutes=1)
DESCRIPTION = "<b>& the drivers' latest stats"


def jobs() -> list[hw.Job]:
    return [
        hw.Job("every_15", schedule="*/15 * * * *", action="materialize_incremental",
               target="driver_stats", description=DESCRIPTION, owner="ml-platform"),
        hw.Job("broken", schedule="*/15 * * * *", action="materialize_incremental",
               target="no_such_view", retries=2, retry_backoff=timedelta(minutes=10)),
        hw.Job("nightly", schedule="0 2 * * *", action="materialize_incremental",
               enabled=False),
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hw.FeatureStore]:
    repo = make_repo(tmp_path_factory.mktemp("jobs") / "repo")
    fragile = hw.Job("fragile", schedule="*/15 * * * *", action="materialize_incremental",
                     target="no_such_view", retries=0)
    with hw.FeatureStore(repo) as opened:
        opened.apply([*jobs(), fragile])
        clock = Clock(T0)  # 00:05 of day 2
        scheduler = Scheduler(opened, owner="s1", now=clock)
        clock.set(T0 + 10 * MINUTE)  # the 00:15 slot: all three enabled jobs
        assert {(r.job, r.status) for r in scheduler.run_due()} == {
            ("every_15", SUCCEEDED), ("broken", RETRYING), ("fragile", FAILED)}
        clock.set(T0 + 20 * MINUTE)  # broken's retry is due; the 00:30 slot is not yet
        assert [(r.job, r.attempt, r.status) for r in scheduler.run_due()] == [
            ("broken", 2, RETRYING)]
        # fragile is deleted: its runs stay in the registry
        definitions = [d.obj for d in load_repo(repo) if not isinstance(d.obj, hw.Job)]
        opened.apply([*definitions, *jobs()], prune=True)
        yield opened


def backend(store: hw.FeatureStore) -> SQLRegistryBackend:
    db = store.registry.backend
    assert isinstance(db, SQLRegistryBackend)
    return db


def run_row(run: JobRun) -> list[str]:
    return [when(run.scheduled_for), str(run.attempt), run.status, duration(run.duration_s),
            "—" if run.rows is None else f"{run.rows:,}", when(run.started_at),
            when(run.finished_at), run.owner, run.error or run.detail or ""]


def test_the_overview_lists_every_job_with_its_next_time_and_last_run(
        store: hw.FeatureStore, client: TestClient) -> None:
    before = datetime.now(UTC)
    page = get(client, "/jobs")
    after = datetime.now(UTC)
    last = backend(store).last_runs(store.project)
    quarter = parse_cron("*/15 * * * *")
    (listing,) = page.table("job", "schedule (UTC)", "action")
    broken, every = last["broken"], last["every_15"]
    assert (broken.attempt, broken.status) == (2, RETRYING) and broken.retry_at is not None
    assert every.status == SUCCEEDED and every.rows == 4 and every.duration_s is not None
    assert listing.rows[0][:4] == ["broken", "*/15 * * * *", "materialize_incremental",
                                   "no_such_view"]
    assert listing.rows[0][4:] == [f"retry at {when(broken.retry_at)}",
                                   when(broken.scheduled_for), RETRYING,
                                   duration(broken.duration_s), ""]
    assert listing.rows[1][:4] == ["every_15", "*/15 * * * *", "materialize_incremental",
                                   "driver_stats"]
    assert listing.rows[1][4] in {when(quarter.next_after(before)),
                                  when(quarter.next_after(after))}
    assert listing.rows[1][5:] == [when(every.scheduled_for), SUCCEEDED,
                                   duration(every.duration_s), DESCRIPTION]
    assert listing.rows[2] == ["nightly", "0 2 * * *", "materialize_incremental",
                               "all online views", "disabled", "—", "—", "—", ""]
    assert len(listing.rows) == 3  # fragile is no longer registered


def test_the_overview_lists_the_latest_runs_of_all_jobs(
        store: hw.FeatureStore, client: TestClient) -> None:
    page = get(client, "/jobs")
    runs = backend(store).runs(store.project, None, 30)
    assert sorted((r.job, r.attempt) for r in runs) == [
        ("broken", 1), ("broken", 2), ("every_15", 1), ("fragile", 1)]
    (recent,) = page.table("scheduled for", "job", "attempt")
    names = {"broken": "broken", "every_15": "every_15", "fragile": "fragile (deleted)"}
    assert recent.rows == [[row[0], names[r.job], *row[1:]]
                           for r, row in ((r, run_row(r)) for r in runs)]
    errors = [r.error or "" for r in runs if r.status != SUCCEEDED]
    assert len(errors) == 3 and all("NotFoundError" in e and "no_such_view" in e
                                    for e in errors)
    assert ("a", {"href": "/jobs?job=every_15"}) in page.tags
    assert ("a", {"href": "/jobs?job=fragile"}) not in page.tags


def test_one_job_shows_its_definition_and_runs(store: hw.FeatureStore,
                                               client: TestClient) -> None:
    page = get(client, "/jobs?job=broken")
    (fields,) = page.table("field", "value")
    values = dict((row[0], row[1]) for row in fields.rows)
    assert values["retries"] == f"2, first after {duration(timedelta(minutes=10))}, doubling"
    assert values["enabled"] == "yes" and values["target"] == "no_such_view"
    latest = backend(store).runs(store.project, "broken", 1)[0]
    assert latest.retry_at is not None and values["next"] == f"retry at {when(latest.retry_at)}"
    (runs,) = page.table("scheduled for", "attempt", "status")
    assert runs.rows == [run_row(r) for r in backend(store).runs(store.project, "broken", 50)]
    assert [row[1:3] for row in runs.rows] == [["2", RETRYING], ["1", RETRYING]]


def test_a_deleted_job_keeps_its_runs_and_a_job_never_run_has_a_page(
        store: hw.FeatureStore, client: TestClient) -> None:
    page = get(client, "/jobs?job=fragile")
    assert "This job is no longer registered; its runs are." in page.text
    (runs,) = page.table("scheduled for", "attempt", "status")
    assert runs.rows == [run_row(r) for r in backend(store).runs(store.project, "fragile")]
    assert runs.rows[0][2] == FAILED
    page = get(client, "/jobs?job=nightly")
    (fields,) = page.table("field", "value")
    assert dict((row[0], row[1]) for row in fields.rows)["next"] == "disabled"
    assert "the scheduler has not run a job yet" in page.text


def test_descriptions_are_escaped_and_nothing_is_fetched(client: TestClient) -> None:
    for path in ("/jobs", "/jobs?job=every_15"):
        page = get(client, path)
        assert "&lt;b&gt;&amp; the drivers" in page.raw and DESCRIPTION in page.text
        assert all(tag not in ("b", "script", "img") for tag, _ in page.tags)
        no_external_url(page)


def test_an_unknown_job_is_a_404(client: TestClient) -> None:
    page = get(client, "/jobs?job=no_such_job", 404)
    assert "NotFoundError" in page.text and "no_such_job" in page.text
