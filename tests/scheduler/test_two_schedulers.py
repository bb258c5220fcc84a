"""Two schedulers on one registry (each with its own store and connections) over many due
slots: every slot runs exactly once, counted by the action's side effect."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import headwater as hw
from headwater.materialize.job import MaterializeResult, Progress
from headwater.registry.sql import SQLRegistryBackend
from headwater.scheduler.base import SUCCEEDED
from headwater.scheduler.runner import Scheduler
from tests.scheduler.conftest import T0, Clock, make_repo

MINUTE = timedelta(minutes=1)


class CountingStore(hw.FeatureStore):
    """A real store that also appends the end of each materialization to a file, before
    doing it: a slot run twice shows up twice."""

    def __init__(self, repo: Path, effects: Path) -> None:
        super().__init__(repo)
        self._effects = effects

    def materialize_incremental(self, end_date: datetime, views: Sequence[str] | None = None,
                                *, progress: Progress | None = None) -> list[MaterializeResult]:
        with self._effects.open("a") as out:
            out.write(f"{end_date.isoformat()}\n")
        return super().materialize_incremental(end_date, views, progress=progress)


@pytest.fixture(params=["sqlite", "postgres"])
def shared_repo(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "sqlite":
        return make_repo(tmp_path / "repo")
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("postgres_schema")
    return make_repo(tmp_path / "repo", f"{{url: '{url}', schema: {schema}}}")


def test_two_schedulers_never_run_a_slot_twice(shared_repo: Path, tmp_path: Path) -> None:
    with hw.FeatureStore(shared_repo) as store:
        store.apply([hw.Job("every_5", schedule="*/5 * * * *",
                            action="materialize_incremental", target="driver_stats")])
    effects = tmp_path / "effects.txt"
    # the clock: 00:05 (start, on a slot) through 12 slots, twice on one time and once off
    # a slot, then over a gap of several slots (only the latest of those runs)
    slots = [T0 + k * 5 * MINUTE for k in range(12)]
    times = [*slots[:6], slots[5], slots[5] + 2 * MINUTE, *slots[6:], slots[-1] + 27 * MINUTE]
    expected = [*slots, slots[-1] + 25 * MINUTE]
    clock = Clock(T0)
    barrier = threading.Barrier(3)
    errors: list[Exception] = []
    finished: list[str] = []
    lock = threading.Lock()

    def scheduler(name: str) -> None:
        with CountingStore(shared_repo, effects) as own:
            runner = Scheduler(own, owner=name, now=clock)
            for _ in times:
                barrier.wait()
                try:
                    done = runner.run_due()
                except Exception as exc:  # noqa: BLE001  the thread boundary: the test reports it
                    errors.append(exc)
                    done = []
                with lock:
                    finished.extend(r.owner for r in done)
                barrier.wait()

    threads = [threading.Thread(target=scheduler, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for t in times:
        clock.set(t)
        barrier.wait()  # both schedulers pass at time t
        barrier.wait()  # both are done
    for thread in threads:
        thread.join()
    assert errors == []
    ran = [datetime.fromisoformat(line) for line in effects.read_text().splitlines()]
    assert sorted(ran) == sorted(expected)  # each due slot once, none twice
    assert len(finished) == len(expected)
    with hw.FeatureStore(shared_repo) as store:
        db = store.registry.backend
        assert isinstance(db, SQLRegistryBackend)
        records: list[Any] = db.runs(store.project, "every_5", limit=1000)
    assert sorted(r.scheduled_for for r in records) == sorted(expected)
    assert all(r.status == SUCCEEDED and r.attempt == 1 for r in records)
