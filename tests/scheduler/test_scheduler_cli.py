"""``headwater scheduler``: --once runs what is due and prints it; SIGTERM stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import headwater as hw
from headwater.cli.main import cli
from headwater.registry.sql import SQLRegistryBackend
from headwater.scheduler.base import FAILED, SUCCEEDED, JobRun


def apply_jobs(repo: Path, *jobs: hw.Job) -> None:
    with hw.FeatureStore(repo) as store:
        store.apply(list(jobs))


def recorded(repo: Path) -> list[JobRun]:
    with hw.FeatureStore(repo) as store:
        db = store.registry.backend
        assert isinstance(db, SQLRegistryBackend)
        return db.runs(store.project)


def test_help_names_the_options() -> None:
    result = CliRunner().invoke(cli, ["scheduler", "--help"])
    assert result.exit_code == 0
    for word in ("--once", "--until", "--poll-seconds", "--owner", "--repo", "SIGTERM"):
        assert word in result.output


def test_once_runs_the_due_jobs_and_prints_each_run(repo: Path) -> None:
    # '* * * * *' is due in the minute the scheduler starts; a disabled job never runs
    apply_jobs(repo,
               hw.Job("minutely", schedule="* * * * *", action="materialize_incremental",
                      target="driver_stats"),
               hw.Job("off", schedule="* * * * *", action="materialize_incremental",
                      enabled=False))
    result = CliRunner().invoke(cli, ["scheduler", "--repo", str(repo), "--once",
                                      "--owner", "cli-test"])
    assert result.exit_code == 0, result.output
    assert "scheduling 1 enabled job(s) of project 'sched' as 'cli-test'" in result.output
    assert "succeeded" in result.output and "minutely" in result.output
    (run,) = recorded(repo)
    assert (run.job, run.status, run.owner, run.attempt) == ("minutely", SUCCEEDED,
                                                             "cli-test", 1)
    # a second pass runs the slot again only if the minute turned meanwhile: never twice
    again = CliRunner().invoke(cli, ["scheduler", "--repo", str(repo), "--once"])
    assert again.exit_code == 0, again.output
    runs = recorded(repo)
    assert len({r.scheduled_for for r in runs}) == len(runs)
    assert all(r.status == SUCCEEDED for r in runs)


def test_once_exits_1_when_a_run_failed_and_prints_the_error(repo: Path) -> None:
    apply_jobs(repo, hw.Job("broken", schedule="* * * * *", action="materialize_incremental",
                            target="no_such_view", retries=0))
    result = CliRunner().invoke(cli, ["scheduler", "--repo", str(repo), "--once"])
    assert result.exit_code == 1
    assert "failed" in result.output and "no_such_view" in result.output
    (run,) = recorded(repo)
    assert run.status == FAILED and "no_such_view" in (run.error or "")

    listed = CliRunner().invoke(cli, ["jobs", "--repo", str(repo)])
    assert listed.exit_code == 0, listed.output
    assert "broken" in listed.output and "failed" in listed.output
    runs = CliRunner().invoke(cli, ["jobs", "broken", "--repo", str(repo)])
    assert runs.exit_code == 0, runs.output
    assert "Runs of broken" in runs.output and "no_such_view" in runs.output


def test_sigterm_stops_the_scheduler_cleanly(repo: Path) -> None:
    apply_jobs(repo, hw.Job("nightly", schedule="0 2 * * *", action="materialize_incremental"))
    code = ("import sys; from headwater.cli.scheduler import scheduler; "
            "scheduler(sys.argv[1:])")
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--repo", str(repo), "--poll-seconds", "3600"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # printed once the scheduler is up
        assert "Press Ctrl+C to stop" in first, first
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "scheduler stopped" in rest
