"""open_online_store: the backend named in headwater.yaml, imported only when used."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from headwater.config import OnlineSettings, parse_settings
from headwater.errors import ConfigError
from headwater.online import open_online_store
from headwater.online.base import ViewKeys
from headwater.online.redis import RedisOnlineStore
from headwater.online.sqlite import SQLiteOnlineStore
from headwater.testing.online import int_keys, record

from .conftest import delete_project_keys


def test_sqlite_is_the_default_in_the_repo_state_folder(tmp_path: Path) -> None:
    store = open_online_store(parse_settings({"project": "p"}, tmp_path))
    try:
        assert isinstance(store, SQLiteOnlineStore)
        assert store.path == tmp_path / ".headwater" / "online.db"
        assert store.write("v", int_keys(1), [record(1)]) == 1
    finally:
        store.close()
    assert (tmp_path / ".headwater" / "online.db").is_file()


def test_a_sqlite_path_is_relative_to_the_repo(tmp_path: Path) -> None:
    settings = parse_settings({"project": "p", "online": {"path": "data/serving.db"}}, tmp_path)
    store = open_online_store(settings)
    try:
        assert isinstance(store, SQLiteOnlineStore)
        assert store.path == tmp_path / "data" / "serving.db"
    finally:
        store.close()


def test_redis_keys_are_namespaced_by_project(tmp_path: Path, redis_url: str,
                                              redis_project: str) -> None:
    other = redis_project + "_other"
    stores = [
        open_online_store(parse_settings(
            {"project": project, "online": {"type": "redis", "url": redis_url}}, tmp_path))
        for project in (redis_project, other)
    ]
    keys = int_keys(2)
    try:
        assert all(isinstance(store, RedisOnlineStore) for store in stores)
        stores[0].write("v", keys, [record(1)] * 2)
        assert stores[1].read([ViewKeys("v", keys)]) == [[None, None]]
        client = redis.Redis.from_url(redis_url)
        try:
            names = set(client.scan_iter(match=f"hw:{redis_project}:*"))
        finally:
            client.close()
        assert names == {f"hw:{redis_project}:{{".encode() + key + b"}" for key in keys}
    finally:
        for store in stores:
            store.close()
        delete_project_keys(redis_url, other)


def test_an_unknown_type_is_a_config_error(tmp_path: Path) -> None:
    settings = replace(parse_settings({"project": "p"}, tmp_path),
                       online=OnlineSettings(type="memcached"))
    with pytest.raises(ConfigError, match="type: sqlite"):
        open_online_store(settings)


def test_importing_the_online_package_loads_no_backend_library() -> None:
    code = (
        "import sys, headwater, headwater.online\n"
        "from headwater.online import open_online_store\n"
        "print(','.join(m for m in ('redis', 'hiredis', 'msgpack', 'headwater.online.redis',"
        " 'headwater.online.sqlite') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_marker_retention_comes_from_the_settings(tmp_path: Path, kind: str,
                                                      request: pytest.FixtureRequest) -> None:
    """``online: marker_retention_h`` reaches the store: with 3.6 ms a marker is gone
    within moments (at most 10 s here); with the default (7 days) it is still there then."""
    import time

    online: dict[str, object] = {"type": kind}
    project = "retention"
    if kind == "redis":
        online["url"] = request.getfixturevalue("redis_url")
        project = request.getfixturevalue("redis_project")
    retentions: list[dict[str, object]] = [{}, {"marker_retention_h": 1e-6}]
    stores = [open_online_store(parse_settings(
        {"project": project, "online": {**online, **extra},
         "stream": {"claim_timeout_s": 0.001}}, tmp_path / f"repo{i}"))
        for i, extra in enumerate(retentions)]
    try:
        for scope, store in zip(("kept", "short"), stores, strict=True):
            store.update("v", int_keys(1), lambda marked, current: {}, scope=scope,
                         ids=["e1", "e2"])
        deadline = time.monotonic() + 10  # the short retention passes within moments
        while stores[1].markers_present("short", ["e1", "e2"]) and time.monotonic() < deadline:
            pass
        assert stores[1].markers_present("short", ["e1", "e2"]) == set()
        assert stores[0].markers_present("kept", ["e1", "e2", "e3"]) == {"e1", "e2"}
    finally:
        for store in stores:
            store.close()
        if kind == "redis":
            delete_project_keys(str(online["url"]), project)
