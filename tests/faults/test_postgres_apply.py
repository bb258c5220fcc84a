"""PostgreSQL restarted (``pg_ctl restart -m immediate``) while ``headwater apply`` writes a
large change: the registry then holds every object of the old state or every object of the
new one, never a mix (heads, stored versions and the change log), and rerunning the apply
completes."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.testing.processes import PostgresCluster

VIEWS = 20
SERVICES = 300  # cheap to prepare, and each a new version: the transaction writes 320
DEFINITIONS = '''
import headwater as hw

ROUND = {round}
driver = hw.Entity("driver", join_keys=["driver_id"])
source = hw.FileSource("data/stats.parquet", timestamp_field="ts")
for i in range({views}):
    globals()[f"view_{{i}}"] = hw.FeatureView(
        f"v{{i}}", entities=[driver], source=source, schema=[hw.Field("x", hw.Float64)],
        description=f"round {{ROUND}}")
for i in range({services}):
    globals()[f"service_{{i}}"] = hw.FeatureService(
        f"s{{i}}", features=[globals()[f"view_{{i % {views}}}"]],
        description=f"round {{ROUND}}")
'''
CHANGED = VIEWS + SERVICES
# where in the transaction the restart lands: a fraction of an uninterrupted apply's
# time under the project lock (near 1.0 the apply may have committed first)
KILL_AT = (0.1, 0.5, 0.95)


@dataclass(frozen=True)
class State:
    """The catalog as the tables hold it."""

    heads: frozenset[tuple[str, str, int]]
    versions: int  # rows of hw_objects
    applies: tuple[tuple[str, int], ...]  # (apply_id, changes) in change-log order


def make_repo(folder: Path, url: str) -> Path:
    (folder / "data").mkdir(parents=True)
    (folder / "headwater.yaml").write_text(f"project: faults\nregistry: {url}\n")
    pq.write_table(pa.table({"driver_id": pa.array([1], pa.int64()),
                             "ts": pa.array([datetime(2024, 1, 1, tzinfo=UTC)],
                                            pa.timestamp("us", "UTC")),
                             "x": [1.0]}), folder / "data" / "stats.parquet")
    return folder


def write_round(repo: Path, round_: int) -> None:
    text = DEFINITIONS.format(round=round_, views=VIEWS, services=SERVICES)
    (repo / "features.py").write_text(text)


def start_apply(repo: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "headwater.cli.main", "apply",
                                 "--repo", str(repo)], stdout=out, stderr=subprocess.STDOUT)


def read_state(url: str) -> State:
    with psycopg.connect(url, connect_timeout=10) as conn:
        heads = conn.execute("SELECT kind, name, version FROM hw_heads "
                             "WHERE project = 'faults'").fetchall()
        (versions,) = conn.execute("SELECT count(*) FROM hw_objects "
                                   "WHERE project = 'faults'").fetchone() or (0,)
        applies = conn.execute("SELECT apply_id, count(*) FROM hw_changes "
                               "WHERE project = 'faults' GROUP BY apply_id "
                               "ORDER BY min(id)").fetchall()
    return State(frozenset((k, n, int(v)) for k, n, v in heads), int(versions),
                 tuple((a, int(c)) for a, c in applies))


def expected_heads(round_: int) -> frozenset[tuple[str, str, int]]:
    """Round r leaves the entity at version 1 and every view and service at r + 1."""
    return frozenset({(hw.Entity.kind, "driver", 1),
                      *((hw.FeatureView.kind, f"v{i}", round_ + 1) for i in range(VIEWS)),
                      *((hw.FeatureService.kind, f"s{i}", round_ + 1) for i in range(SERVICES))})


def check_round(state: State, round_: int) -> None:
    """The registry as ``round_`` complete apply runs leave it, each one whole."""
    assert state.heads == expected_heads(round_)
    assert state.versions == 1 + CHANGED * (round_ + 1)
    assert [count for _, count in state.applies] == [CHANGED + 1] + [CHANGED] * round_


def project_lock_held(url: str) -> bool:
    """Whether a session holds the project's advisory lock (an apply is writing)."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                               "AND objsubid = 2 AND granted").fetchone()
    except psycopg.OperationalError:
        return False
    return bool(row and row[0])


def wait_for_lock(url: str, process: subprocess.Popen[bytes], log: Path) -> float:
    """Poll until the apply holds the project lock; returns the time it was seen."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if project_lock_held(url):
            return time.monotonic()
        if process.poll() is not None:
            pytest.fail(f"apply ended before it took the lock:\n{log.read_text()}")
        time.sleep(0.005)
    pytest.fail("apply did not take the project lock within 120 s")


def wait_for_release(url: str) -> float:
    """Poll until no session holds the project lock; returns the time it was seen free."""
    deadline = time.monotonic() + 120
    while project_lock_held(url):
        if time.monotonic() > deadline:
            pytest.fail("the apply held the project lock for over 120 s")
        time.sleep(0.005)
    return time.monotonic()


def finish(process: subprocess.Popen[bytes]) -> int:
    try:
        return process.wait(120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_restart_during_apply_leaves_the_old_or_the_new_registry_whole(
        tmp_path: Path, postgres_cluster: PostgresCluster) -> None:
    url = postgres_cluster.url
    repo = make_repo(tmp_path / "repo", url)
    log = tmp_path / "apply.log"

    write_round(repo, 0)
    first = start_apply(repo, log)
    locked = wait_for_lock(url, first, log)
    held = wait_for_release(url) - locked  # how long an apply's transaction takes here
    assert finish(first) == 0, log.read_text()
    check_round(read_state(url), 0)

    interrupted = 0
    for round_, fraction in enumerate(KILL_AT, start=1):
        write_round(repo, round_)
        apply = start_apply(repo, log)
        try:
            locked = wait_for_lock(url, apply, log)
            time.sleep(max(0.0, locked + fraction * held - time.monotonic()))
            postgres_cluster.restart_immediately()
        finally:
            code = finish(apply)
        state = read_state(url)
        if state.heads == expected_heads(round_ - 1):
            check_round(state, round_ - 1)  # rolled back whole
            assert code != 0
            message = log.read_text()
            assert "PostgreSQL registry" in message and "Fix:" in message, message
            assert "Traceback" not in message, message
            interrupted += 1
        else:  # committed before the restart (or its answer was lost with the connection)
            check_round(state, round_)
        rerun = start_apply(repo, log)
        assert finish(rerun) == 0, log.read_text()
        check_round(read_state(url), round_)
    assert interrupted >= 1, "no restart landed inside an apply's transaction"
