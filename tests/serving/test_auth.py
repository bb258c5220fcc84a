"""API keys: every endpoint refuses a missing or wrong key; keys from config or environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import headwater as hw
from headwater.cli.main import cli
from headwater.config import ServerSettings
from headwater.serving.auth import API_KEYS_ENV, presented_key, resolve_keys
from headwater.serving.http import create_app
from headwater.serving.keys import KeyRing
from tests.serving.conftest import KEY

REQUESTS = [
    ("POST", "/features", {"features": ["globbed:trips"], "entities": [{"driver_id": 1001}]}),
    ("POST", "/push", {"view": "globbed", "rows": []}),
    ("GET", "/health", None),
    ("GET", "/metrics", None),
]


@pytest.fixture
def bare_client(served_repo: Path) -> Iterator[TestClient]:
    """A server with keys, and a client that sends none unless told."""
    keys = KeyRing([KEY.encode(), b"second-key"])
    with hw.FeatureStore(served_repo) as store, TestClient(
            create_app(store, api_keys=keys)) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
@pytest.mark.parametrize(("headers", "words"), [
    ({}, "missing API key"),
    ({"Authorization": "Bearer wrong-key"}, "not valid"),
    ({"X-API-Key": "wrong-key"}, "not valid"),
    ({"Authorization": f"Basic {KEY}"}, "missing API key"),
    ({"Authorization": "Bearer "}, "missing API key"),
    ({"Authorization": f"Bearer {KEY}x"}, "not valid"),
])
def test_a_missing_or_wrong_key_is_401_on_every_endpoint(
        bare_client: TestClient, *, method: str, path: str, body: object,
        headers: dict[str, str], words: str) -> None:
    answer = bare_client.request(method, path, json=body, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    error = answer.json()["error"]
    assert error["type"] == "unauthorized" and words in error["message"]
    assert "wrong-key" not in answer.text and KEY not in answer.text


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
@pytest.mark.parametrize("headers", [
    {"Authorization": f"Bearer {KEY}"},
    {"authorization": f"bearer {KEY}"},
    {"X-API-Key": "second-key"},
])
def test_a_right_key_passes_on_every_endpoint(
        bare_client: TestClient, method: str, path: str, body: object,
        headers: dict[str, str]) -> None:
    answer = bare_client.request(method, path, json=body, headers=headers)
    assert answer.status_code == 200, answer.text


def test_the_schema_is_public_and_401s_are_counted(bare_client: TestClient) -> None:
    assert bare_client.get("/openapi.json").status_code == 200
    bare_client.get("/health")
    metrics = bare_client.get("/metrics", headers={"X-API-Key": KEY}).text
    assert 'headwater_http_requests_total{endpoint="/health",method="GET",status="401"} 1' \
        in metrics


def test_without_auth_no_key_is_needed(served_repo: Path) -> None:
    with hw.FeatureStore(served_repo) as store, TestClient(
            create_app(store, api_keys=None)) as client:
        assert client.get("/health").status_code == 200
        assert "securitySchemes" not in client.get("/openapi.json").json()["components"]


def test_keys_come_from_config_and_environment() -> None:
    settings = ServerSettings(api_keys=("from-yaml",))
    keys = resolve_keys(settings, environ={API_KEYS_ENV: " env-1, ,env-2 "})
    assert keys is not None
    assert keys.operator == (b"from-yaml", b"env-1", b"env-2")
    assert "from-yaml" not in repr(keys)
    only = resolve_keys(ServerSettings(), environ={API_KEYS_ENV: "k"})
    assert only is not None and only.operator == (b"k",)


def test_auth_is_off_only_when_asked() -> None:
    assert resolve_keys(ServerSettings(auth=False), environ={}) is None
    assert resolve_keys(ServerSettings(api_keys=("k",)), no_auth=True, environ={}) is None
    with pytest.raises(hw.ConfigError) as err:
        resolve_keys(ServerSettings(), environ={API_KEYS_ENV: " , "})
    assert "--no-auth" in str(err.value) and API_KEYS_ENV in str(err.value)


def test_presented_key_reads_both_headers() -> None:
    assert presented_key([(b"authorization", b"Bearer abc ")]) == b"abc"
    assert presented_key([(b"x-api-key", b"xyz")]) == b"xyz"
    assert presented_key([(b"authorization", b"Token abc")]) is None
    assert presented_key([]) is None


def test_serve_refuses_to_start_without_keys(served_repo: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEYS_ENV, raising=False)
    result = CliRunner().invoke(cli, ["serve", "--repo", str(served_repo)])
    assert result.exit_code == 1
    assert "needs API keys" in result.output and "--no-auth" in result.output
