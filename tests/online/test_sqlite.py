"""SQLite specifics: the file and table, one statement per read, the compare-and-set done
by SQLite's blob comparison, and clear errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.errors import StoreUnavailableError
from headwater.online.base import ViewKeys
from headwater.online.sqlite import SQLiteOnlineStore
from headwater.testing.online import int_keys, record


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteOnlineStore]:
    instance = SQLiteOnlineStore(tmp_path / "deep" / "er" / "online.db")
    yield instance
    instance.close()


def statements_during(store: SQLiteOnlineStore, requests: list[ViewKeys]) -> list[str]:
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    try:
        store.read(requests)
    finally:
        store._conn.set_trace_callback(None)
    return seen


def test_one_wal_file_with_a_without_rowid_table(store: SQLiteOnlineStore) -> None:
    store.write("v", int_keys(1), [record(1)])
    assert store.path.is_file()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'hw_online'").fetchone()
        assert "WITHOUT ROWID" in sql
        assert "PRIMARY KEY (view, key)" in sql
    conn.close()


def test_the_blob_comparison_is_unsigned_byte_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "probe.db")
    try:
        # 0x80 sorts above 0x7f only if bytes compare unsigned (memcmp), as the encoding needs
        assert conn.execute("SELECT substr(x'80', 1, 16) > substr(x'7fffffff', 1, 16), "
                            "x'00ff' < x'0100', x'0000' > x'00'").fetchone() == (1, 1, 1)
    finally:
        conn.close()


@pytest.mark.parametrize("shape", [
    [("a", 1)], [("a", 2)], [("a", 1_000)], [("a", 3), ("b", 5), ("c", 300)],
    [("a", 2), ("a", 7)],
])
def test_a_read_is_one_statement(store: SQLiteOnlineStore, shape: list[tuple[str, int]]) -> None:
    for view in {view for view, _ in shape}:
        store.write(view, int_keys(1_000), [record(1, None, view)] * 1_000)
    requests = [ViewKeys(view, int_keys(n, start=995)) for view, n in shape]
    seen = statements_during(store, requests)
    assert len(seen) == 1 and seen[0].startswith(("SELECT", "WITH"))
    assert store.read(requests) == [
        [record(1, None, view) if i < 5 else None for i in range(n)] for view, n in shape]


def test_reads_past_the_parameter_limit_are_split_in_one_transaction(
        store: SQLiteOnlineStore) -> None:
    keys = int_keys(100)
    store.write("a", keys, [record(1, None, "a")] * 100)
    store.write("b", keys, [record(2, None, "b")] * 100)
    store._max_keys = 8  # as if SQLite took only 16 parameters per statement
    requests = [ViewKeys("a", keys), ViewKeys("b", [*keys[::-1], b"unknown"])]
    seen = statements_during(store, requests)
    assert seen[0] == "BEGIN" and seen[-1] == "COMMIT"
    assert store.read(requests) == [[record(1, None, "a")] * 100,
                                    [record(2, None, "b")] * 100 + [None]]
    assert store.read([ViewKeys("a", [*keys, b"unknown"])]) == [
        [record(1, None, "a")] * 100 + [None]]


def test_padding_keeps_the_number_of_statements_small(store: SQLiteOnlineStore) -> None:
    keys = int_keys(200)
    store.write("v", keys, [record(1)] * 200)
    for n in range(2, 200):
        assert store.read([ViewKeys("v", keys[:n])]) == [[record(1)] * n]
    assert len(store._in_sql) == 8  # 2, 4, ..., 256


def test_a_folder_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreUnavailableError, match="online: path") as info:
        SQLiteOnlineStore(blocker / "online.db")
    assert str(blocker / "online.db") in str(info.value)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    path.write_bytes(b"this is not a SQLite file" * 100)
    with pytest.raises(StoreUnavailableError, match=r"online\.db"):
        SQLiteOnlineStore(path)


def test_a_closed_store_says_so(store: SQLiteOnlineStore) -> None:
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StoreUnavailableError, match="was closed"):
        store.read([ViewKeys("v", int_keys(1))])
    with pytest.raises(StoreUnavailableError, match="was closed"):
        store.write("v", int_keys(1), [record(1)])
