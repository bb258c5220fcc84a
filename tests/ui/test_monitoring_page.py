"""The monitoring page over a real churn repo: a feature view monitor (quality and drift) run
at several window ends, the last one past the data (so it alerts), a model monitor whose
checks find no predictions, and a monitor never run. The page shows what the stored runs
hold: statuses, failed findings first, one chart per series of findings, escaping, no
external URL (webhooks by host only), unknown names as 404 pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.monitoring.report_series import monitor_series
from headwater.monitoring.report_svg import number
from headwater.registry.monitor_tables import MonitorRun
from headwater.testing.models import START, applied_store, churn_repo
from headwater.ui.html import when
from tests.ui.test_models_page import get, no_external_url

DESCRIPTION = "<b>& daily customer statistics"
WEBHOOK = "https://hooks.example/services/T000/secret-token"
ENDS = (30, 34, 38, 45)  # days after START; the data ends at day 40
SEVERITY = {"critical": 0, "warning": 1, "info": 2}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hw.FeatureStore]:
    repo = churn_repo(tmp_path_factory.mktemp("monitoring") / "repo", customers=80, days=40)
    opened = applied_store(repo)
    try:
        opened.train("churn")
        opened.apply([
            hw.Monitor("stats_watch", feature_view="customer_stats",
                       checks=("quality", "drift"), window=timedelta(days=2),
                       description=DESCRIPTION, webhooks=(WEBHOOK,), owner="data-team"),
            hw.Monitor("churn_watch", model="churn", window=timedelta(days=7)),
            hw.Monitor("service_watch", feature_service="churn_features")])
        for day in ENDS:
            opened.run_monitor("stats_watch", end=START + timedelta(days=day), alerts=False)
        opened.run_monitor("churn_watch", end=START + timedelta(days=40), alerts=False)
        yield opened
    finally:
        opened.close()


def window(run: MonitorRun) -> str:
    assert run.window_start is not None and run.window_end is not None
    return f"{when(run.window_start)} to {when(run.window_end)}"


def failed_names(run: MonitorRun) -> str:
    names = [f"{f.check}:{f.target}" if f.target else f.check for f in run.failed]
    return ", ".join(dict.fromkeys(names)) or "—"


def test_the_overview_lists_each_monitor_with_its_last_run(
        store: hw.FeatureStore, client: TestClient) -> None:
    page = get(client, "/monitoring")
    (stats,) = store.monitor_runs("stats_watch", limit=1)
    (churn,) = store.monitor_runs("churn_watch", limit=1)
    assert stats.status == "alert" and churn.status == "alert"
    (monitors,) = page.table("monitor", "subject", "checks")
    assert monitors.rows == [
        ["churn_watch", "model churn", "drift, performance, skew", "7 days", window(churn),
         "alert", f"{len(churn.failed)} of {len(churn.findings)}", "0", ""],
        ["service_watch", "feature service churn_features", "quality", "1 day", "never run",
         "—", "—", "—", ""],
        ["stats_watch", "feature view customer_stats", "quality, drift", "2 days",
         window(stats), "alert", f"{len(stats.failed)} of {len(stats.findings)}", "0",
         DESCRIPTION]]
    (recent,) = page.table("started", "monitor", "window", "status")
    runs = store.monitor_runs(limit=20)
    assert len(runs) == len(ENDS) + 1
    assert recent.rows == [[when(r.started_at), r.monitor, window(r), r.status,
                            failed_names(r), str(r.alerts_sent)] for r in runs]
    assert [r[3] for r in recent.rows if r[1] == "stats_watch"] == ["alert", "ok", "ok", "ok"]
    assert ("a", {"href": "/models?model=churn"}) in page.tags


def test_one_monitor_shows_its_latest_findings_failed_first(
        store: hw.FeatureStore, client: TestClient) -> None:
    page = get(client, "/monitoring?monitor=stats_watch")
    latest = store.monitor_runs("stats_watch", limit=1)[0]
    (findings,) = page.table("check", "subject", "target", "value")
    expected = sorted(latest.findings, key=lambda f: (not f.failed, SEVERITY[f.severity]))
    assert findings.rows == [
        [f.check, f.subject, f.target, number(f.value), number(f.threshold),
         "failed" if f.failed else "no", f.severity, f.message] for f in expected]
    flags = [row[5] for row in findings.rows]
    assert flags == ["failed"] * len(latest.failed) + ["no"] * (len(flags) - len(latest.failed))
    assert 0 < len(latest.failed) < len(flags)
    assert {("quality.volume", ""), ("drift.feature", "")} <= {
        (f.check, f.target) for f in latest.failed}  # the window after the data is empty
    assert (f"Run {latest.id} started {when(latest.started_at)}, window {window(latest)}: "
            f"alert, {len(latest.failed)} of {len(latest.findings)} findings failed, "
            "0 alert(s) sent.") in page.text
    (runs,) = page.table("run", "started", "window")
    stored = store.monitor_runs("stats_watch")
    assert runs.rows == [[str(r.id), when(r.started_at), window(r), r.status,
                          str(len(r.findings)), failed_names(r), str(r.alerts_sent), ""]
                         for r in stored]
    assert "headwater monitor report stats_watch" in page.text


def test_one_chart_per_series_of_findings(store: hw.FeatureStore, client: TestClient) -> None:
    page = get(client, "/monitoring?monitor=stats_watch")
    series = monitor_series(list(reversed(store.monitor_runs("stats_watch"))))
    charts = page.series()
    assert [(c.attrs["data-check"], c.attrs["data-target"]) for c in charts] == [
        (s.check, s.target) for s in series]
    assert [(c.points, c.failed) for c in charts] == [(len(s.points), s.failed)
                                                      for s in series]
    assert {s.check for s in series} >= {"quality.volume", "drift.feature"}
    volume = next(c for c in charts if c.attrs["data-check"] == "quality.volume")
    assert volume.points == len(ENDS) and volume.failed == 1
    assert "Performance over time" not in page.text


def test_a_model_monitor_draws_its_performance_apart(
        store: hw.FeatureStore, client: TestClient) -> None:
    page = get(client, "/monitoring?monitor=churn_watch")
    series = monitor_series(store.monitor_runs("churn_watch"))
    performance = [s.check for s in series if s.performance]
    assert performance == ["performance.predictions"]
    assert "Performance over time" in page.text
    assert sorted(c.attrs["data-check"] for c in page.series()) == sorted(
        s.check for s in series)
    assert ("a", {"href": "/models?model=churn"}) in page.tags


def test_a_monitor_never_run_says_how_to_run_it(client: TestClient) -> None:
    page = get(client, "/monitoring?monitor=service_watch")
    assert "No run yet: run headwater monitor run service_watch." in page.text
    assert page.series() == []


def test_webhooks_show_by_host_names_are_escaped_nothing_is_fetched(
        client: TestClient) -> None:
    for path in ("/monitoring", "/monitoring?monitor=stats_watch"):
        page = get(client, path)
        assert "&lt;b&gt;&amp; daily" in page.raw and DESCRIPTION in page.text
        assert all(tag not in ("b", "script", "img") for tag, _ in page.tags)
        assert "secret" not in page.raw and "https" not in page.raw
        no_external_url(page)
    page = get(client, "/monitoring?monitor=stats_watch")
    (fields,) = page.table("field", "value")
    values = dict((row[0], row[1]) for row in fields.rows)
    assert values["webhooks"] == "1 (hooks.example)" and values["owner"] == "data-team"
    assert values["checks"] == "quality, drift" and values["window"] == "2 days"


def test_an_unknown_monitor_is_a_404(client: TestClient) -> None:
    page = get(client, "/monitoring?monitor=no_such_monitor", 404)
    assert "NotFoundError" in page.text and "no_such_monitor" in page.text
