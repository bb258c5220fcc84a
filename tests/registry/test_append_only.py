"""The change log and stored versions cannot be rewritten, even by hand-written SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from headwater.registry.catalog import Registry
from headwater.registry.postgres import PostgresRegistry
from headwater.registry.sqlite import SQLiteRegistry

from .conftest import DRIVER


def test_sqlite_change_log_and_versions_are_append_only(tmp_path: Path) -> None:
    backend = SQLiteRegistry(tmp_path / "r.db")
    Registry(backend, "p").apply([DRIVER])
    backend.close()
    conn = sqlite3.connect(tmp_path / "r.db")
    for statement in ("UPDATE hw_changes SET action = 'x'", "DELETE FROM hw_changes",
                      "UPDATE hw_objects SET spec = '{}'", "DELETE FROM hw_objects"):
        with pytest.raises(sqlite3.IntegrityError, match=r"append-only|immutable"):
            conn.execute(statement)
    conn.close()


def test_postgres_change_log_and_versions_are_append_only(postgres_url: str,
                                                          postgres_schema: str) -> None:
    backend = PostgresRegistry(postgres_url, schema=postgres_schema)
    Registry(backend, "p").apply([DRIVER])
    backend.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in ("hw_changes", "hw_objects"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(f'DELETE FROM "{postgres_schema}".{table}')


def test_postgres_unreachable_is_a_clear_error() -> None:
    from headwater.errors import StoreUnavailableError

    expected = r"127\.0\.0\.1:1/.*Fix: start PostgreSQL"
    with pytest.raises(StoreUnavailableError, match=expected) as err:
        PostgresRegistry("postgresql://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in str(err.value)
