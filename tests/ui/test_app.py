"""The dashboard app: sign-in with the server's API keys (cookie or header), redirects,
the stylesheet, error pages, and ``headwater ui`` as a real process."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.repo import init_repo
from headwater.repo.loader import load_definitions
from headwater.serving.keys import KeyRing
from headwater.testing.processes import free_port, stop_process
from headwater.ui.app import COOKIE, PAGES, create_ui
from tests.cli.test_cli_subprocess import headwater_script
from tests.cli.test_serve import wait_healthy

KEY = "ui-test-key"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ui") / "repo"
    init_repo(folder, "ui_project", n_drivers=4, n_hours=48)
    with hw.FeatureStore(folder) as store:
        store.apply(load_definitions(folder), prune=True)
    return folder


@pytest.fixture
def client(repo: Path) -> Iterator[TestClient]:
    store = hw.FeatureStore(repo)
    try:
        yield TestClient(create_ui(store, api_keys=KeyRing([KEY.encode()])),
                         follow_redirects=False)
    finally:
        store.close()


def test_pages_need_a_key_and_send_the_browser_to_sign_in(client: TestClient) -> None:
    for path in PAGES:
        answer = client.get(f"/{path}")
        assert answer.status_code == 303 and answer.headers["location"] == f"/login?next=/{path}"
    assert client.get("/").headers["location"] == "/catalog"
    page = client.get("/login?next=/models")
    assert page.status_code == 200 and 'name=next value="/models"' in page.text


def test_a_wrong_key_is_refused_and_a_right_one_signs_in(client: TestClient) -> None:
    wrong = client.post("/login", content="key=nope&next=/jobs",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert COOKIE not in wrong.cookies
    right = client.post("/login", content=f"key={KEY}&next=/jobs",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert right.status_code == 303 and right.headers["location"] == "/jobs"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert KEY not in cookie  # the cookie holds an HMAC of the key, never the key
    assert client.get("/catalog").status_code == 200  # the cookie now signs each request
    out = client.get("/logout")
    assert out.status_code == 303
    client.cookies.clear()
    assert client.get("/catalog").status_code == 303


def test_a_header_key_works_as_on_the_server(client: TestClient) -> None:
    assert client.get("/catalog", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert client.get("/catalog", headers={"X-API-Key": "nope"}).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "/\t/evil.example",
                                    "https://evil.example/", "\\\\evil.example", "models"])
def test_sign_in_never_redirects_off_the_app(client: TestClient, target: str) -> None:
    answer = client.post("/login", content=urlencode({"key": KEY, "next": target}),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.headers["location"] == "/catalog"


def test_sign_in_returns_to_the_page_asked_for_with_its_query(client: TestClient) -> None:
    answer = client.get("/models?model=churn")
    assert answer.headers["location"] == "/login?next=/models%3Fmodel%3Dchurn"


def test_a_stray_header_key_does_not_hide_a_valid_session(client: TestClient) -> None:
    client.post("/login", content=f"key={KEY}&next=/jobs",
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert client.get("/jobs", headers={"X-API-Key": "stray"}).status_code == 200


def test_pages_carry_security_headers_and_are_not_cached(client: TestClient) -> None:
    page = client.get("/catalog", headers={"X-API-Key": KEY})
    assert "script-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert "max-age" in client.get("/static/ui.css").headers["cache-control"]


def test_an_oversized_sign_in_form_is_refused(client: TestClient) -> None:
    answer = client.post("/login", content="key=" + "x" * 20_000,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413


def test_every_page_renders_in_the_layout_with_the_local_stylesheet(client: TestClient) -> None:
    headers = {"X-API-Key": KEY}
    css = client.get("/static/ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for path, (title, _) in PAGES.items():
        page = client.get(f"/{path}", headers=headers)
        assert page.status_code == 200, page.text
        assert f"<h1>{title}</h1>" in page.text and 'href="/static/ui.css"' in page.text
        assert "ui_project" in page.text
        assert "http://" not in page.text and "https://" not in page.text


def test_an_unknown_name_is_a_404_page(client: TestClient) -> None:
    page = client.get("/models?model=no_such_model", headers={"X-API-Key": KEY})
    assert page.status_code == 404 and "NotFoundError" in page.text


def test_ui_without_keys_says_how_to_turn_auth_off_for_it(repo: Path) -> None:
    from click.testing import CliRunner

    from headwater.cli.main import cli

    result = CliRunner().invoke(cli, ["ui", "--repo", str(repo)],
                                env={"HEADWATER_API_KEYS": ""})
    assert result.exit_code == 1
    assert "headwater ui needs API keys" in result.output
    assert "'headwater ui --no-auth'" in result.output


def test_pages_answer_head(client: TestClient) -> None:
    assert client.head("/catalog", headers={"X-API-Key": KEY}).status_code == 200


def test_headwater_ui_serves_as_a_process(repo: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "ui.log"
    env = {**os.environ, "HEADWATER_API_KEYS": KEY, "NO_COLOR": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen([headwater_script(), "ui", "--repo", str(repo), "--port",
                                    str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_healthy(process, url, log)
        page = httpx.get(f"{url}/catalog", headers={"X-API-Key": KEY})
        assert page.status_code == 200 and "driver_stats" in page.text
        assert httpx.get(f"{url}/catalog").status_code == 303
    finally:
        stop_process(process)
