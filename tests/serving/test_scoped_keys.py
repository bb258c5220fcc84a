"""Scoped API keys on every endpoint: no key and a wrong key are 401, a key without the
endpoint's scope 403, a key with it (or admin) passes; a revoked key stops working; the
dashboard signs in read keys only and a revoked key's session ends."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.serving.http import create_app
from headwater.serving.keys import KeyRing, create_key, registry_loader, revoke_key
from headwater.ui.app import create_ui

# method, path, body, the scope it needs, and the status a key with that scope gets
ENDPOINTS = [
    ("POST", "/features", {"features": ["globbed:trips"], "entities": [{"driver_id": 1001}]},
     "read", 200),
    ("GET", "/health", None, "read", 200),
    ("GET", "/metrics", None, "read", 200),
    ("POST", "/push", {"view": "globbed", "rows": []}, "push", 200),
    # no model of that name: the key passed, the request then fails on what it asked
    ("POST", "/predict", {"model": "no_such_model", "entities": [{"driver_id": 1001}]},
     "predict", 404),
]
SCOPES = ("read", "push", "predict", "admin")


@pytest.fixture
def keyed(served_repo: Path) -> Iterator[tuple[hw.FeatureStore, dict[str, str]]]:
    """The served repo's store and one registry key per scope."""
    with hw.FeatureStore(served_repo) as store:
        keys = {scope: create_key(store, f"{scope} key", [scope])[0] for scope in SCOPES}
        yield store, keys


@pytest.fixture
def server(keyed: tuple[hw.FeatureStore, dict[str, str]]) -> Iterator[TestClient]:
    store, _ = keyed
    ring = KeyRing([], registry_loader(store), refresh_seconds=0)
    with TestClient(create_app(store, api_keys=ring)) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body", "needed", "ok"), ENDPOINTS,
                         ids=[e[1] for e in ENDPOINTS])
def test_each_endpoint_wants_its_scope(
        server: TestClient, keyed: tuple[hw.FeatureStore, dict[str, str]], *, method: str,
        path: str, body: object, needed: str, ok: int) -> None:
    _, keys = keyed

    def call(headers: dict[str, str]) -> tuple[int, str]:
        answer = server.request(method, path, json=body, headers=headers)
        return answer.status_code, answer.text

    assert call({})[0] == 401
    status, text = call({"X-API-Key": keys[needed][:-2] + "xx"})  # a mistyped key
    assert status == 401 and "not valid" in text and keys[needed] not in text
    for scope in SCOPES:
        status, text = call({"Authorization": f"Bearer {keys[scope]}"})
        if scope in (needed, "admin"):
            assert status == ok, (scope, text)
        else:
            assert status == 403, (scope, text)
            error = server.request(method, path, json=body,
                                   headers={"X-API-Key": keys[scope]}).json()["error"]
            assert error["type"] == "forbidden" and f"needs '{needed}'" in error["message"]
            assert keys[scope] not in text


def test_a_revoked_key_is_refused(server: TestClient,
                                  keyed: tuple[hw.FeatureStore, dict[str, str]]) -> None:
    store, keys = keyed
    headers = {"X-API-Key": keys["read"]}
    assert server.get("/health", headers=headers).status_code == 200
    revoke_key(store, keys["read"].split("_")[1])
    answer = server.get("/health", headers=headers)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]["message"]
    assert server.get("/health", headers={"X-API-Key": keys["admin"]}).status_code == 200


def test_the_dashboard_signs_in_read_keys_and_ends_revoked_sessions(
        keyed: tuple[hw.FeatureStore, dict[str, str]]) -> None:
    store, keys = keyed
    ring = KeyRing([b"operator-key"], registry_loader(store), refresh_seconds=0)
    with TestClient(create_ui(store, api_keys=ring), follow_redirects=False) as ui:
        refused = ui.post("/login", data={"key": keys["push"], "next": "/catalog"})
        assert refused.status_code == 403 and "needs 'read'" in html.unescape(refused.text)
        assert ui.post("/login", data={"key": "nope"}).status_code == 401
        signed = ui.post("/login", data={"key": keys["read"], "next": "/catalog"})
        assert signed.status_code == 303
        cookie = signed.cookies["hw_ui_session"]
        assert keys["read"] not in cookie and keys["read"].split("_")[2] not in cookie
        assert ui.get("/catalog").status_code == 200
        forged = cookie.rsplit(".", 1)[0] + "." + "0" * 64
        ui.cookies.set("hw_ui_session", forged)
        assert ui.get("/catalog").status_code == 303  # to the login page
        ui.cookies.set("hw_ui_session", cookie)
        assert ui.get("/catalog").status_code == 200
        revoke_key(store, keys["read"].split("_")[1])
        assert ui.get("/catalog").status_code == 303  # the session ended with the key
        assert ui.get("/catalog", headers={"X-API-Key": "operator-key"}).status_code == 200
