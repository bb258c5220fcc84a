"""The dashboard in a real headless Chromium (Debian's, driven by Selenium): sign in with a
key, every page loads with data of a real repo, no console errors, the charts render with a
size, and the navigation links lead from page to page. ``make test`` installs Chromium and
its driver (``make browser``); without them the test skips, or fails in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import headwater as hw
from headwater.testing.models import START, applied_store, churn_repo
from headwater.testing.processes import free_port, stop_process
from headwater.ui.app import PAGES
from tests.cli.test_cli_subprocess import headwater_script
from tests.cli.test_serve import wait_healthy
from tests.conftest import service_unavailable

KEY = "browser-test-key"
DAYS = 40


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``headwater ui`` over a churn repo with two model versions, a promotion and monitor
    runs; its URL."""
    folder = tmp_path_factory.mktemp("browser")
    repo = churn_repo(folder / "repo", customers=80, days=DAYS)
    store = applied_store(repo)
    try:
        store.train("churn")
        store.train("churn")
        store.promote("churn", 1, force=True)
        store.apply([hw.Monitor("stats_watch", feature_view="customer_stats",
                                checks=("quality", "drift"), window=timedelta(days=2))])
        for day in (30, 34, 38, 45):
            store.run_monitor("stats_watch", end=START + timedelta(days=day), alerts=False)
    finally:
        store.close()
    port = free_port()
    log = folder / "ui.log"
    env = {**os.environ, "HEADWATER_API_KEYS": KEY, "NO_COLOR": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen([headwater_script(), "ui", "--repo", str(repo), "--port",
                                    str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, url, log)
        yield url
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        service_unavailable("Chromium", "chromium or chromedriver is not installed: make "
                                        "browser")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    instance = webdriver.Chrome(service=Service(str(driver)), options=options)
    try:
        yield instance
    finally:
        instance.quit()


def sign_in(browser: Any, url: str) -> None:
    """Fill the login form and wait until the browser has left it (the form's POST)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.NAME, "key").send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30).until(lambda b: b.current_url == url)


def console_errors(browser: Any) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE"]


def test_sign_in_then_every_page_through_the_navigation(dashboard: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.delete_all_cookies()
    browser.get(f"{dashboard}/catalog")
    assert browser.current_url.startswith(f"{dashboard}/login")
    sign_in(browser, f"{dashboard}/catalog")
    browser.get(f"{dashboard}/jobs")  # so that every click below leads to another page
    for path, (title, _) in PAGES.items():
        browser.find_element(By.LINK_TEXT, title).click()  # the header's navigation
        WebDriverWait(browser, 30).until(lambda b, p=path: b.current_url == f"{dashboard}/{p}")
        assert browser.find_element(By.TAG_NAME, "h1").text == title
        assert "churn_demo" in browser.find_element(By.TAG_NAME, "header").text
        assert console_errors(browser) == [], path
    # the pages show the repo's data
    browser.get(f"{dashboard}/catalog")
    assert "customer_stats" in browser.page_source
    browser.get(f"{dashboard}/models?model=churn")
    assert "production" in browser.page_source


def test_charts_render_with_a_size(dashboard: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{dashboard}/login?next=/lineage")
    sign_in(browser, f"{dashboard}/lineage")
    for page in ("/models?model=churn", "/monitoring?monitor=stats_watch", "/lineage"):
        browser.get(dashboard + page)
        charts = browser.find_elements(By.CSS_SELECTOR, "svg")
        assert charts, page
        for chart in charts:
            size = chart.size
            assert size["width"] > 0 and size["height"] > 0, page
        assert console_errors(browser) == [], page
