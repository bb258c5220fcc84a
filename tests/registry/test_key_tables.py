"""API keys in the registry (SQLite and PostgreSQL): only the digest is kept, revocation
sticks, and a KeyRing over the table accepts, scopes and refuses keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from headwater.errors import AuthError, DefinitionError, ForbiddenError, NotFoundError
from headwater.registry.key_tables import StoredKey
from headwater.registry.sql import SQLRegistryBackend
from headwater.serving.keys import KeyRing, digest, key_id, new_key

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_a_created_key_is_kept_as_its_digest_only(sql: SQLRegistryBackend) -> None:
    key, stored = new_key("scoring", ["predict", "read"], NOW)
    sql.add_key("p", stored)
    (got,) = sql.api_keys("p")
    assert got == stored and got.scopes == ("read", "predict")  # canonical order
    assert got.digest == digest(key) and key not in repr(got)
    assert key_id(key) == got.key_id and key.startswith(f"hwk_{got.key_id}_")
    # nothing in the table holds the key or its secret
    with sql._read() as cur:
        cur.execute(sql._sql("SELECT * FROM {p}hw_api_keys"))
        rows = cur.fetchall()
    secret = key.rsplit("_", 1)[1]
    assert rows and not any(secret in str(value) for row in rows for value in row)
    assert sql.api_keys("other") == []


def test_revoked_keys_stay_listed_and_leave_the_active_ones(sql: SQLRegistryBackend) -> None:
    _, first = new_key("a", ["read"], NOW)
    _, second = new_key("b", ["push"], NOW)
    sql.add_key("p", first)
    sql.add_key("p", second)
    revoked = sql.revoke_key("p", first.key_id, now=NOW)
    assert revoked.revoked_at == NOW and not revoked.active
    again = sql.revoke_key("p", first.key_id, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert again.revoked_at == NOW  # the first revocation time stays
    assert [k.key_id for k in sql.api_keys("p", active_only=True)] == [second.key_id]
    assert {k.key_id for k in sql.api_keys("p")} == {first.key_id, second.key_id}
    with pytest.raises(NotFoundError, match="headwater keys list"):
        sql.revoke_key("p", "0123456789ab", now=NOW)
    with pytest.raises(ValueError, match="exists already"):
        sql.add_key("p", second)


def test_a_key_ring_over_the_registry_checks_keys_and_scopes(
        sql: SQLRegistryBackend) -> None:
    reader, read_only = new_key("dashboard", ["read"], NOW)
    admin, admin_key = new_key("ops", ["admin"], NOW)
    sql.add_key("p", read_only)
    sql.add_key("p", admin_key)
    ring = KeyRing([b"operator-key"], lambda: sql.api_keys("p", active_only=True),
                   refresh_seconds=0)
    assert ring.check(reader.encode(), "read").label == f"key {read_only.key_id} (dashboard)"
    with pytest.raises(ForbiddenError, match=r"has the scope\(s\) read, and this needs 'push'"):
        ring.check(reader.encode(), "push")
    for scope in ("read", "push", "predict", "admin"):  # admin may do everything
        ring.check(admin.encode(), scope)
        assert ring.check(b"operator-key", scope).label == "operator"
    for wrong in (b"", b"nope", reader.encode()[:-1] + b"x", b"hwk_" + b"0" * 12 + b"_x",
                  admin.encode().replace(admin_key.key_id.encode(), read_only.key_id.encode())):
        with pytest.raises(AuthError, match="not valid") as caught:
            ring.check(wrong, "read")
        assert not isinstance(caught.value, ForbiddenError)
    with pytest.raises(AuthError, match="missing API key"):
        ring.check(None, "read")
    sql.revoke_key("p", read_only.key_id, now=NOW)
    with pytest.raises(AuthError, match="not valid"):
        ring.check(reader.encode(), "read")


def test_bad_names_and_scopes_are_refused() -> None:
    with pytest.raises(DefinitionError, match=r"unknown scope.*'write'.*choose from read"):
        new_key("x", ["read", "write"], NOW)
    with pytest.raises(DefinitionError, match="no scope given"):
        new_key("x", [], NOW)
    for name in ("", " lead", "a" * 65, "tab\there", "semi;colon"):
        with pytest.raises(DefinitionError, match="not a valid name"):
            new_key(name, ["read"], NOW)


def test_a_key_ring_rereads_the_registry_on_its_interval_and_for_unknown_ids(
        sql: SQLRegistryBackend) -> None:
    first, stored = new_key("a", ["read"], NOW)
    sql.add_key("p", stored)
    loads: list[int] = []

    def load() -> list[StoredKey]:
        loads.append(1)
        return sql.api_keys("p", active_only=True)

    ring = KeyRing([], load, refresh_seconds=3600)
    ring.check(first.encode(), "read")
    sql.revoke_key("p", stored.key_id, now=NOW)
    ring.check(first.encode(), "read")  # revoked, and still held until the next read
    assert len(loads) == 1
    second, other = new_key("b", ["read"], NOW)
    sql.add_key("p", other)
    with pytest.raises(AuthError):  # unknown, but the registry was read under a second ago
        ring.check(second.encode(), "read")
    ring._loaded_at -= 1.5  # as if 1.5 s passed: an unknown id makes it read again
    assert ring.check(second.encode(), "read").label == f"key {other.key_id} (b)"
    assert len(loads) == 2
    with pytest.raises(AuthError):  # that read saw the revocation too
        ring.check(first.encode(), "read")
    ring._loaded_at -= 3600  # the interval passed: read again
    ring.check(second.encode(), "read")
    assert len(loads) == 3
