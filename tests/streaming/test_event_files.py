"""The offline copy of events: date partitions, ingestion order, pending files."""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.offline.file_order import ingestion_sorted, push_time
from headwater.online.sqlite import SQLiteOnlineStore
from headwater.streaming.event_files import (
    ROW_BITS,
    EventFile,
    SeqClock,
    final_path,
    marker_of,
    plan_files,
    plan_seq,
    publish,
    recover_pending,
    rewrite_pending,
    write_files,
)
from headwater.streaming.parquet_append import PushFolder, temp_path

STAMP = pa.timestamp("us", "UTC")
DAY = datetime(2024, 3, 9, 23, 59, tzinfo=UTC)


def times(*moments: datetime) -> pa.Array:
    return pa.array(list(moments), STAMP)


def test_files_split_by_utc_date_and_seq_follows_file_then_row() -> None:
    ts = times(DAY, DAY + timedelta(minutes=2), DAY, DAY + timedelta(minutes=3))
    files, seq = plan_files(ts, SeqClock())
    assert [f.parts[0] for f in files] == ["date=2024-03-09", "date=2024-03-10"]
    assert [f.rows.tolist() for f in files] == [[0, 2], [1, 3]]
    # one seq per event, unique, and in the order of (file push time, row in file)
    assert len(set(seq.tolist())) == 4
    by_file = [seq[f.rows].tolist() for f in files]
    assert by_file[0] == sorted(by_file[0]) and max(by_file[0]) < min(by_file[1])
    for f in files:  # the file name carries the push time the seq is built from
        ns, _tag = push_time(f.name) or (0, "")
        assert ns == f.ms * 1_000_000 and (int(seq[f.rows][0]) >> ROW_BITS) == f.ms


@given(st.lists(st.integers(0, 4 * 86_400_000_000), min_size=1, max_size=60),
       st.integers(1, 4))
@settings(max_examples=60, deadline=None)
def test_seq_orders_events_as_the_offline_reader_orders_their_files(
        offsets: list[int], batches: int) -> None:
    """Over several batches, sorting events by seq equals sorting them by (file in
    ingestion order, row in file): the rule the offline join uses."""
    clock = SeqClock()
    base = int(DAY.timestamp() * 1e6)
    placed: list[tuple[str, int, int]] = []  # (file name, row in file, seq)
    for chunk in np.array_split(np.array(offsets), batches):
        if not len(chunk):
            continue
        ts = pa.array(chunk + base, pa.int64()).cast(STAMP)
        files, seq = plan_files(ts, clock)
        for f in files:
            placed += [(f.name, row, int(seq[i])) for row, i in enumerate(f.rows.tolist())]
    names = sorted({p[0] for p in placed})
    order = {p: i for i, p in enumerate(ingestion_sorted([Path(n) for n in names],
                                                         by_path=lambda p: p.parts))}
    by_files = sorted(placed, key=lambda p: (order[Path(p[0])], p[1]))
    assert [p[2] for p in by_files] == sorted(p[2] for p in placed)
    assert len({p[2] for p in placed}) == len(placed)


def test_online_only_seq_is_increasing_across_calls() -> None:
    clock = SeqClock()
    first, second = plan_seq(3, clock), plan_seq(2, clock)
    both = [*first.tolist(), *second.tolist()]
    assert both == sorted(both) and len(set(both)) == 5


def _batch(tmp_path: Path, consumer: str | None) -> tuple[PushFolder, list[Path]]:
    folder = PushFolder(tmp_path / "events", None)
    ts = times(DAY, DAY + timedelta(days=1))
    table = pa.table({"ts": ts, "v": [1, 2]})
    files, _ = plan_files(ts, SeqClock())
    return folder, write_files(folder, table, files, pending=consumer)


def test_pending_files_are_invisible_until_published(tmp_path: Path) -> None:
    folder, pending = _batch(tmp_path, "c1")
    assert all(p.name.startswith(".") and not p.name.endswith(".parquet") for p in pending)
    assert list(folder.folder.rglob("*.parquet")) == []
    publish(pending)
    visible = sorted(folder.folder.rglob("*.parquet"))
    assert visible == sorted(final_path(p) for p in pending)
    assert sorted(pq.read_table(v).column("v").to_pylist()[0] for v in visible) == [1, 2]


def test_recovery_publishes_committed_files_and_deletes_own_uncommitted(
        tmp_path: Path) -> None:
    online = SQLiteOnlineStore(tmp_path / "online.db")
    try:
        folder, mine = _batch(tmp_path, "c1")
        _, other = _batch(tmp_path, "c2")
        committed_name = final_path(mine[0]).name
        online.update("v", (), lambda marked, current: {}, scope="s",
                      markers=[marker_of(committed_name), marker_of(final_path(other[0]).name)])

        def present(markers: list[str]) -> set[str]:
            return online.markers_present("s", markers)

        done = recover_pending(folder.folder, "c1", present)
        assert (done.published, done.deleted) == (2, 1)
        assert final_path(mine[0]).is_file() and final_path(other[0]).is_file()
        assert not mine[1].exists()  # c1's uncommitted file: its events come again
        assert other[1].exists()  # c2 may still be writing it: left alone
        assert recover_pending(folder.folder, "c1", present).published == 0
    finally:
        online.close()


def test_a_file_another_consumer_published_is_not_an_error(tmp_path: Path) -> None:
    _, pending = _batch(tmp_path, "c1")
    publish(pending)
    publish(pending)  # renamed already (by the recovery of another consumer)
    with pytest.raises(FileNotFoundError):
        publish([pending[0].parent / ".push-0000000000000000001-ab.parquet.pending-c1"])


def commit(online: SQLiteOnlineStore, files: list[Path], *, left: list[Path]) -> None:
    """Mark ``files`` committed (scope ``s``), and ``left`` unchanged for two minutes."""
    online.update("v", (), lambda marked, current: {}, scope="s",
                  markers=[marker_of(final_path(p).name) for p in files])
    long_ago = time.time() - 120
    for path in left:
        os.utime(path, (long_ago, long_ago))


def test_another_consumers_files_are_taken_once_left_for_the_claim_timeout(
        tmp_path: Path) -> None:
    """A running consumer sweeps with ``own=False``: the committed files a dead consumer
    left (unchanged for the claim timeout) become visible; a live one's recent files, and
    the sweeper's own in-flight files, are left alone."""
    online = SQLiteOnlineStore(tmp_path / "online.db")
    try:
        folder, mine = _batch(tmp_path, "c1")
        _, dead = _batch(tmp_path, "c2")
        _, live = _batch(tmp_path, "c3")
        commit(online, [*mine, *dead, *live], left=dead)

        def present(markers: list[str]) -> set[str]:
            return online.markers_present("s", markers)

        done = recover_pending(folder.folder, "c1", present, others_after=60, own=False)
        assert (done.published, done.deleted) == (len(dead), 0)
        assert all(final_path(p).is_file() and not p.exists() for p in dead)
        assert all(p.exists() for p in [*mine, *live])  # in flight: not touched
        at_start = recover_pending(folder.folder, "c1", present, others_after=60)
        assert at_start.published == len(mine) and all(p.exists() for p in live)
    finally:
        online.close()


def test_a_swept_file_its_live_writer_deleted_meanwhile_is_skipped(tmp_path: Path) -> None:
    """The writer was alive after all: it deleted its committed file (to rewrite it without
    events another consumer committed) between the sweep's look and its rename."""
    online = SQLiteOnlineStore(tmp_path / "online.db")
    try:
        folder, theirs = _batch(tmp_path, "slow")
        commit(online, theirs, left=theirs)

        def present_then_deleted(markers: list[str]) -> set[str]:
            found = online.markers_present("s", markers)
            theirs[0].unlink()  # the writer, meanwhile
            return found

        done = recover_pending(folder.folder, "sweeper", present_then_deleted,
                               others_after=60, own=False)
        assert done.published == len(theirs)
        assert not final_path(theirs[0]).exists()  # gone, not an error
        assert all(final_path(p).is_file() for p in theirs[1:])
        with pytest.raises(FileNotFoundError):  # a consumer's own file must be there
            publish([theirs[0]])
    finally:
        online.close()


@pytest.mark.parametrize("pending", [None, "c1"])
def test_a_failed_folder_sync_leaves_no_file_of_the_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pending: str | None) -> None:
    """The folder fsync after the renames fails (an I/O error): the files already renamed
    visible are removed again with the temporary ones, so a retry cannot write rows twice."""
    from headwater.errors import StoreUnavailableError
    from headwater.streaming import parquet_append

    def failing_sync(folder: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(parquet_append, "sync_folder", failing_sync)
    with pytest.raises(StoreUnavailableError, match=r"Input/output error.*Fix:"):
        _batch(tmp_path, pending)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    _, written = _batch(tmp_path, pending)
    assert len(written) == 2 and all(p.exists() for p in written)


def _rows(path: Path) -> list[int]:
    return list(pq.read_table(path).column("v").to_pylist())


def _rewrite_setup(tmp_path: Path) -> tuple[pa.Table, list[EventFile], list[Path]]:
    ts = times(DAY, DAY + timedelta(days=1), DAY + timedelta(days=1))
    table = pa.table({"ts": ts, "v": [1, 2, 3]})
    files, _ = plan_files(ts, SeqClock())
    return table, files, write_files(PushFolder(tmp_path / "events", None), table, files,
                                     pending="c1")


def test_a_rewrite_keeps_the_rows_left_and_deletes_an_emptied_file(tmp_path: Path) -> None:
    table, files, pending = _rewrite_setup(tmp_path)
    assert [_rows(p) for p in pending] == [[1], [2, 3]]
    kept = [dataclasses.replace(files[0], rows=files[0].rows[:0]),
            dataclasses.replace(files[1], rows=files[1].rows[1:])]
    assert rewrite_pending(table, kept, pending) == [pending[1]]
    assert not pending[0].exists() and _rows(pending[1]) == [3]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [pending[1].name]


def test_a_failed_rewrite_leaves_every_pending_file_whole(tmp_path: Path) -> None:
    """The second file's new content cannot be written (its temporary path is taken by a
    folder): no file is lost or emptied, each holds its old rows, no temporary file stays."""
    from headwater.errors import StoreUnavailableError

    table, files, pending = _rewrite_setup(tmp_path)
    blocker = temp_path(final_path(pending[1]))
    blocker.mkdir()
    kept = [files[0], dataclasses.replace(files[1], rows=files[1].rows[1:])]
    with pytest.raises(StoreUnavailableError, match="Fix:"):
        rewrite_pending(table, kept, pending)
    assert [_rows(p) for p in pending] == [[1], [2, 3]]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        p.name for p in pending)
