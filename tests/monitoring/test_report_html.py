"""The monitor report: its JSON series equal the stored findings (volume checked against the
source rows counted by hand), its HTML opens offline, draws one chart per series with the
failed points marked and the threshold dashed, escapes every name, draws reference vs
current histograms from drift findings' counts (and the training reference alone, read from
the model's artifact, when a finding has none), and an empty history is a clear error."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.errors import DataError, NotFoundError
from headwater.monitoring.findings import Finding
from headwater.monitoring.report_html import write_monitor_report
from headwater.monitoring.report_svg import TOP
from headwater.registry.monitor_tables import MonitorRun, monitor_tables
from headwater.testing.models import FEATURES_FILE, START, applied_store, churn_repo

DAYS = 40
DAY = timedelta(days=1)
END = START + timedelta(days=DAYS)  # the generated data's end
ENDS = (END, END - 2 * DAY, END + 2 * DAY, END - DAY, END + DAY)  # run order, not time order
VIEW = "feature_view:customer_stats"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[hw.FeatureStore]:
    instance = applied_store(churn_repo(tmp_path / "repo", customers=60, days=DAYS))
    try:
        yield instance
    finally:
        instance.close()


@dataclass
class Svg:
    attrs: dict[str, str]
    circles: list[dict[str, str]] = field(default_factory=list)
    paths: list[dict[str, str]] = field(default_factory=list)
    rects: list[tuple[dict[str, str], str]] = field(default_factory=list)


class Page(HTMLParser):
    """The parts of the page the tests look at, as the browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.svgs: list[Svg] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.rows: list[tuple[str, list[str]]] = []  # findings table: (class, cells)
        self.text: list[str] = []
        self._where: list[str] = []
        self._rect: dict[str, str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.tags.append((tag, values))
        if tag == "svg":
            self.svgs.append(Svg(values))
        elif tag == "circle":
            self.svgs[-1].circles.append(values)
        elif tag == "path":
            self.svgs[-1].paths.append(values)
        elif tag == "rect" and "class" in values:
            self._rect = values
        elif tag == "table" and values.get("class") == "findings":
            self._where.append("findings")
        elif tag == "tr" and self._where[-1:] == ["findings"] and "class" in values:
            self.rows.append((values["class"], []))
        elif tag == "td" and self._where[-1:] == ["findings"]:
            self.rows[-1][1].append("")
        if tag in ("title", "td"):
            self._where.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("title", "td", "table") and self._where and self._where[-1] in (
                tag, "findings"):
            self._where.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._where[-1:] == ["td"] and self.rows and len(self._where) > 1:
            self.rows[-1][1][-1] += data
        if self._where[-1:] == ["title"] and self._rect is not None:
            self.svgs[-1].rects.append((self._rect, data))
            self._rect = None


def run_ends(store: hw.FeatureStore) -> list[MonitorRun]:
    store.apply([hw.Monitor("stats_fresh", feature_view="customer_stats", window=DAY,
                            freshness=2 * DAY)])
    return [store.run_monitor("stats_fresh", end=end, alerts=False) for end in ENDS]


def rows_in(repo: Path, start: datetime, end: datetime) -> int:
    """Rows of the view's source file with start <= ts < end, counted by hand."""
    ts = pq.read_table(repo / FEATURES_FILE).column("ts")
    inside = pc.and_(pc.greater_equal(ts, start), pc.less(ts, end))
    return int(pc.sum(inside.cast("int64")).as_py())


def bin_labels(edges: list[float]) -> list[str]:
    """``[lo, hi)`` per bin, the last closed, 4 significant digits."""
    last = len(edges) - 2
    return [f"[{lo:.4g}, {hi:.4g}{']' if i == last else ')'}"
            for i, (lo, hi) in enumerate(itertools.pairwise(edges))]


def strict_load(path: Path) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path.name} holds {name}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_the_json_series_are_the_stored_findings(store: hw.FeatureStore,
                                                 tmp_path: Path) -> None:
    runs = run_ends(store)
    assert [r.status for r in runs] == ["ok", "ok", "alert", "ok", "alert"]
    html_path, json_path = write_monitor_report(store, "stats_fresh", tmp_path / "out")
    assert (html_path, json_path) == (tmp_path / "out" / "stats_fresh.html",
                                      tmp_path / "out" / "stats_fresh.json")
    document = strict_load(json_path)
    assert document["monitor"] == "stats_fresh" and document["project"] == store.project
    assert document["definition"] == json.loads(json.dumps(
        store.get_monitor("stats_fresh").spec()))
    stored = list(reversed(store.monitor_runs("stats_fresh")))
    assert document["runs"] == [r.to_dict() for r in stored]  # oldest first
    assert [r["id"] for r in document["runs"]] == sorted(r.id for r in runs)
    # the series, rebuilt from the stored findings: one per (check, subject, target)
    expected: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in stored:
        for f in run.findings:
            expected.setdefault((f.check, f.subject, f.target), []).append({
                "run_id": run.id, "window_end": f.window_end.isoformat()
                if f.window_end else None, "value": f.value, "threshold": f.threshold,
                "failed": f.failed, "severity": f.severity})
    got = {(s["check"], s["subject"], s["target"]): s["points"] for s in document["series"]}
    assert all(s["model_version"] is None for s in document["series"])
    assert got == {k: sorted(v, key=lambda p: p["window_end"]) for k, v in expected.items()}
    assert len(document["series"]) == len(expected)
    # the volume series against the source file, counted by hand, in time order
    volume = got[("quality.volume", VIEW, "")]
    ends = sorted(ENDS)
    assert [p["window_end"] for p in volume] == [e.isoformat() for e in ends]
    counts = [rows_in(Path(store.repo_path), e - DAY, e) for e in ends]
    assert counts[:3] == [60, 60, 60] and counts[3:] == [0, 0]
    assert [p["value"] for p in volume] == counts
    assert [p["failed"] for p in volume] == [c == 0 for c in counts]
    # limit: the newest runs, still oldest first
    _, newest = write_monitor_report(store, "stats_fresh", tmp_path / "two", limit=2)
    assert [r["id"] for r in strict_load(newest)["runs"]] == sorted(r.id for r in runs)[-2:]


def test_the_page_draws_one_chart_per_series_with_failures_marked(
        store: hw.FeatureStore, tmp_path: Path) -> None:
    run_ends(store)
    html_path, json_path = write_monitor_report(store, "stats_fresh", tmp_path)
    series = strict_load(json_path)["series"]
    page = Page(html_path.read_text(encoding="utf-8"))
    charts = [s for s in page.svgs if s.attrs["class"] == "series"]
    assert [(c.attrs["data-check"], c.attrs["data-subject"], c.attrs["data-target"])
            for c in charts] == [(s["check"], s["subject"], s["target"]) for s in series]
    for chart, data in zip(charts, series, strict=True):
        classes = [c["class"].split() for c in chart.circles]
        assert len(classes) == len(data["points"])
        assert [("failed" in c) for c in classes] == [p["failed"] for p in data["points"]]
        assert all(c[0] == "point" for c in classes)
    # volume: the failed (empty) windows lie below the dashed threshold (min_rows 1), the
    # others above it (in SVG, y grows downwards)
    (volume,) = [c for c in charts if c.attrs["data-check"] == "quality.volume"]
    (line,) = [p for p in volume.paths if p.get("class") == "threshold"]
    assert line["stroke-dasharray"]
    level = float(line["d"].split()[1])  # "M<x> <y> L<x> <y>": one threshold, horizontal
    assert [float(c["cy"]) > level for c in volume.circles] == [False] * 3 + [True] * 2
    assert ["failed" in c["class"] for c in volume.circles] == [False] * 3 + [True] * 2
    # freshness: nothing measured at END + 2 DAY (no event within the SLO): failed, hollow
    (fresh,) = [c for c in charts if c.attrs["data-check"] == "quality.freshness"]
    last = fresh.circles[-1]
    assert "failed" in last["class"] and last["fill"] == "white"
    assert all(c["fill"] != "white" for c in fresh.circles[:-1])
    # the latest run (ended END + DAY): failed findings first, in red rows
    latest = store.monitor_runs("stats_fresh", limit=1)[0]
    assert len(page.rows) == len(latest.findings)
    failed = sum(f.failed for f in latest.findings)
    assert failed == 1
    assert [c for c, _ in page.rows] == ["failed"] * failed + ["ok"] * (
        len(latest.findings) - failed)
    assert page.rows[0][1][0] == "quality.volume"
    # offline: nothing fetched, nothing run, no link
    assert not [t for t, a in page.tags if t in ("script", "link", "img", "iframe")]
    assert not [(t, a) for t, a in page.tags for k, v in a.items()
                if k in ("src", "href") or "http" in v]
    assert "Reference vs current" not in "".join(page.text)  # a view monitor has none


def test_names_are_escaped_and_infinities_kept(store: hw.FeatureStore, tmp_path: Path) -> None:
    store.apply([hw.Monitor("odd", feature_view="customer_stats",
                            webhooks=("https://ops:s3cret@hooks.example/x/t0ken",))])
    at = datetime(2024, 3, 1, tzinfo=UTC)
    weird = "<script>alert('x')</script>&co"
    findings = [
        Finding("quality.range", VIEW, weird, math.inf, 0.1, True, f"{weird} out of range",
                window_start=at - DAY, window_end=at),
        Finding("quality.null_rate", VIEW, "a<b", 0.0, 0.5, False, "ok", window_start=at - DAY,
                window_end=at, details={"ratio": -math.inf}),
    ]
    monitor_tables(store.registry.backend).record_monitor_run(
        store.project, "odd", started_at=at, finished_at=at, window_start=at - DAY,
        window_end=at, status="alert", findings=findings)
    html_path, json_path = write_monitor_report(store, "odd", tmp_path)
    raw = html_path.read_text(encoding="utf-8")
    assert weird not in raw and "<b" not in raw.replace("<body", "")
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;co" in raw
    page = Page(raw)
    assert not [t for t, _ in page.tags if t == "script"]
    assert [s.attrs["data-target"] for s in page.svgs] == [weird, "a<b"]
    assert page.rows[0][1][2] == weird and page.rows[1][1][2] == "a<b"
    # the webhook's password and path token are not shown, in the page or the JSON
    for secret in ("s3cret", "t0ken"):
        assert secret not in raw and secret not in json_path.read_text(encoding="utf-8")
    document = strict_load(json_path)
    assert document["definition"]["webhooks"] == ["https://***@hooks.example/x/***"]
    (first, _) = document["series"]
    assert first["points"][0]["value"] == "inf"
    assert document["runs"][0]["findings"][1]["details"] == {"ratio": "-inf"}
    # the infinite point is hollow at the top of its chart, failed
    (circle,) = page.svgs[0].circles
    assert "failed" in circle["class"] and circle["fill"] == "white"
    assert float(circle["cy"]) == TOP


def test_model_drift_histograms_from_counts_and_from_the_reference(
        store: hw.FeatureStore, tmp_path: Path) -> None:
    store.train("churn")
    store.apply([hw.Monitor("churn_watch", model="churn")])
    (version,) = store.models.versions("churn")
    assert version.reference is not None
    # the training reference, read straight from its file
    reference = json.loads(store.models.artifacts.path(version.reference).read_bytes())
    sessions = reference["features"]["sessions_7d"]["histogram"]
    minutes = reference["features"]["minutes_7d"]["histogram"]
    current = [c * (3 if i < 3 else 1) for i, c in enumerate(sessions["counts"])]
    base = {"model_version": version.version}
    at = datetime(2024, 3, 1, tzinfo=UTC)

    def drift(target: str, value: float | None, failed: bool, **details: Any) -> Finding:
        return Finding("drift.feature", "model:churn", target, value, 0.005, failed,
                       f"{target} drift", window_start=at - DAY, window_end=at,
                       details={**base, **details})

    findings = [
        drift("sessions_7d", 0.3, True, mode="bins", edges=sessions["edges"],
              reference_counts=sessions["counts"], current_counts=current),
        drift("minutes_7d", None, True),  # no counts stored: the reference alone
        drift("plan", 0.2, True, mode="categories", buckets=["basic", "a<b", "<other>"],
              reference_counts=[5, 3, 2], current_counts=[1, 1, 8]),
        drift("tenure_days", 0.001, False, mode="bins", edges=[0, 1], reference_counts=[1],
              current_counts=[1]),
        Finding("performance.roc_auc", "model:churn", "roc_auc", 0.61, 0.7, True, "worse",
                window_start=at - DAY, window_end=at, details=base),
        Finding("drift.feature", "model:churn", "sessions_7d", 0.001, 0.005, False,
                "a second version in the window", window_start=at - DAY, window_end=at,
                details={"model_version": version.version + 1}),
    ]
    monitor_tables(store.registry.backend).record_monitor_run(
        store.project, "churn_watch", started_at=at, finished_at=at, window_start=at - DAY,
        window_end=at, status="alert", findings=findings)
    html_path, json_path = write_monitor_report(store, "churn_watch", tmp_path)
    # each model version is its own series (its own reference and training metrics)
    assert [(s["check"], s["target"], s["model_version"], [p["value"] for p in s["points"]])
            for s in strict_load(json_path)["series"]] == [
        ("drift.feature", "sessions_7d", 1, [0.3]), ("drift.feature", "minutes_7d", 1, [None]),
        ("drift.feature", "plan", 1, [0.2]), ("drift.feature", "tenure_days", 1, [0.001]),
        ("performance.roc_auc", "roc_auc", 1, [0.61]),
        ("drift.feature", "sessions_7d", 2, [0.001])]
    page = Page(html_path.read_text(encoding="utf-8"))
    histograms = [s for s in page.svgs if s.attrs["class"] == "histogram"]
    assert len(histograms) == 3  # the failed drift findings, in order; not tenure_days
    with_counts, alone, categories = histograms

    def bars(svg: Svg, kind: str) -> list[str]:
        return [title for attrs, title in svg.rects if attrs["class"] == kind]

    def titles(labels: list[str], counts: list[int], kind: str) -> list[str]:
        total = sum(counts)
        return [f"{label}: {kind} {n:,} ({n / total:.1%})"
                for label, n in zip(labels, counts, strict=True)]

    labels = bin_labels(sessions["edges"])
    assert bars(with_counts, "reference") == titles(labels, sessions["counts"], "reference")
    assert bars(with_counts, "current") == titles(labels, current, "current")
    labels = bin_labels(minutes["edges"])
    assert bars(alone, "reference") == titles(labels, minutes["counts"], "reference")
    assert bars(alone, "current") == []
    assert bars(categories, "current") == titles(["basic", "a<b", "<other>"], [1, 1, 8],
                                                 "current")
    text = "".join(page.text)
    assert text.count("Current counts were not stored") == 1
    assert "Performance over time" in text
    (roc,) = [s for s in page.svgs if s.attrs.get("data-check") == "performance.roc_auc"]
    assert ["failed" in c["class"] for c in roc.circles] == [True]


def test_a_reference_that_cannot_be_read_is_named_on_the_page(
        store: hw.FeatureStore, tmp_path: Path) -> None:
    store.train("churn")
    store.apply([hw.Monitor("churn_watch", model="churn")])
    (version,) = store.models.versions("churn")
    assert version.reference is not None
    store.models.artifacts.path(version.reference).write_text("{}")  # altered after training
    at = datetime(2024, 3, 1, tzinfo=UTC)
    monitor_tables(store.registry.backend).record_monitor_run(
        store.project, "churn_watch", started_at=at, finished_at=at, window_start=at - DAY,
        window_end=at, status="alert", findings=[Finding(
            "drift.feature", "model:churn", "minutes_7d", None, 0.005, True, "missing",
            details={"model_version": version.version})])
    html_path, _ = write_monitor_report(store, "churn_watch", tmp_path)
    text = "".join(Page(html_path.read_text(encoding="utf-8")).text)
    assert "The reference statistics could not be read" in text
    assert "does not match the registry" in text


def test_an_empty_history_names_the_command_to_run(store: hw.FeatureStore,
                                                   tmp_path: Path) -> None:
    store.apply([hw.Monitor("stats_fresh", feature_view="customer_stats")])
    with pytest.raises(DataError, match=r"run `headwater monitor run stats_fresh` first"):
        write_monitor_report(store, "stats_fresh", tmp_path)
    store.run_monitor("stats_fresh", end=END, alerts=False)
    later = datetime.now(UTC) + DAY
    with pytest.raises(DataError, match=r"since .*earlier since"):
        write_monitor_report(store, "stats_fresh", tmp_path, since=later)
    assert list(tmp_path.iterdir()) == [tmp_path / "repo"]  # nothing written
    with pytest.raises(NotFoundError, match="stats_fresh"):
        write_monitor_report(store, "nope", tmp_path)
