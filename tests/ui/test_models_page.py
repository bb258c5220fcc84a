"""The models page over a real churn repo: two trained versions of different estimators,
promotions (one forced past a threshold), a spec never trained; every value the model
registry holds appears as the page renders it, with one chart per metric, escaping, no
external URL, and unknown names as 404 pages.

:class:`Page` (an html.parser reading of a rendered page) is shared by the other page
tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sklearn.dummy import DummyClassifier

import headwater as hw
from headwater.testing.models import DEFINITIONS_FILE, applied_store, churn_repo
from headwater.ui.html import when

DESCRIPTION = "<b>& churn within 30 days"
THRESHOLD = 0.6


@dataclass
class Table:
    """A table's header cells and its body rows, as text."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Chart:
    """An inline SVG chart: its attributes, points drawn and failed points."""

    attrs: dict[str, str]
    points: int = 0
    failed: int = 0
    threshold: bool = False


class Page(HTMLParser):
    """A rendered page read back: its text, tables, tags and SVG charts."""

    def __init__(self, raw: str) -> None:
        super().__init__(convert_charrefs=True)
        self.raw = raw
        self.tables: list[Table] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.charts: list[Chart] = []
        self.texts: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._svg: Chart | None = None
        self._head = False
        self.feed(raw)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.tags.append((tag, values))
        if tag == "table":
            self.tables.append(Table([]))
        elif tag == "thead":
            self._head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "svg":
            self._svg = Chart(values)
        elif self._svg is not None and tag == "circle":
            self._svg.points += 1
            self._svg.failed += "failed" in values.get("class", "").split()
        elif self._svg is not None and tag == "path" and values.get("class") == "threshold":
            self._svg.threshold = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._head:
                self.tables[-1].headers = self._row
            else:
                self.tables[-1].rows.append(self._row)
            self._row = None
        elif tag == "thead":
            self._head = False
        elif tag == "svg" and self._svg is not None:
            self.charts.append(self._svg)
            self._svg = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._cell is not None and self._svg is None:
            self._cell.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.texts).split())

    def table(self, *headers: str) -> list[Table]:
        """The tables whose header row starts with ``headers``."""
        return [t for t in self.tables if t.headers[:len(headers)] == list(headers)]

    def series(self) -> list[Chart]:
        """The line charts (one per series)."""
        return [c for c in self.charts if c.attrs.get("class") == "series"]


def no_external_url(page: Page) -> None:
    """No tag loads or links anything off the app."""
    for tag, attrs in page.tags:
        for name in ("href", "src", "action", "xlink:href"):
            value = attrs.get(name, "")
            assert "http" not in value and not value.startswith("//"), (tag, attrs)


def get(client: TestClient, path: str, status: int = 200) -> Page:
    answer = client.get(path)
    assert answer.status_code == status, answer.text
    return Page(answer.text)


def weak(spec: hw.ModelSpec) -> hw.ModelSpec:
    """``spec`` with an estimator that always answers the base rate (roc_auc 0.5)."""
    return hw.ModelSpec(name=spec.name, features=spec.features, label=spec.label,
                        estimator=DummyClassifier(strategy="prior"), split=spec.split,
                        metrics=spec.metrics, promotion=spec.promotion,
                        description=spec.description)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hw.FeatureStore]:
    repo = churn_repo(tmp_path_factory.mktemp("models") / "repo", customers=80, days=40,
                      regression=True)
    definitions = repo / DEFINITIONS_FILE
    text = definitions.read_text()
    for old, new in (('"Will the customer cancel within 30 days?"', repr(DESCRIPTION)),
                     ('hw.PromotionRule("roc_auc")',
                      f'hw.PromotionRule("roc_auc", threshold={THRESHOLD})')):
        assert old in text
        text = text.replace(old, new)
    definitions.write_text(text)
    opened = applied_store(repo)
    try:
        strong = opened.get_model("churn")
        opened.apply([weak(strong)])
        opened.train("churn")  # version 1: the base rate, below the threshold
        opened.apply([strong])
        opened.train("churn")  # version 2
        opened.promote("churn", 1, force=True)
        opened.promote("churn", 2)
        opened.promote("churn", 1, "staging")
        yield opened
    finally:
        opened.close()


def version_rows(store: hw.FeatureStore, name: str) -> list[list[str]]:
    """The versions table as the page should show it, from the registry's records."""
    rows = []
    for v in store.models.versions(name):
        lineage = v.lineage
        rows.append([str(v.version), when(v.created_at), " ".join(v.aliases) or "—",
                     v.estimator_class.rsplit(".", 1)[1],
                     f"{lineage['rows']['train']:,} / {lineage['rows']['test']:,}",
                     f"{lineage['fit_seconds']:.3g} s",
                     *(f"{v.metrics[m]:.4f}" for m in store.get_model(name).metrics),
                     f"{lineage['feature_service']} v{lineage['feature_service_version']}",
                     lineage["training_fingerprint"][:12],
                     (lineage["code_revision"] or "—")[:12], v.run_id[:12]])
    return rows


def history_rows(store: hw.FeatureStore) -> list[list[str]]:
    v1, v2 = (v.metrics["roc_auc"] for v in store.models.versions("churn"))
    events = store.models.history("churn")
    checks = [f"roc_auc {v1:.4f} vs no current version: failed",
              f"roc_auc {v2:.4f} vs current {v1:.4f}: passed", ""]
    assert [(e.alias, e.from_version, e.to_version, e.reason) for e in events] == [
        ("production", None, 1, "promote --force"), ("production", 1, 2, "promote"),
        ("staging", None, 1, "promote")]
    return [[when(e.at), e.alias, "—" if e.from_version is None else str(e.from_version),
             str(e.to_version), e.reason, check] for e, check in zip(events, checks,
                                                                     strict=True)]


def test_the_overview_lists_every_model_with_its_registry_records(
        store: hw.FeatureStore, client: TestClient) -> None:
    page = get(client, "/models")
    latest = store.models.versions("churn")[-1]
    (summary,) = page.table("model", "task", "versions")
    assert summary.rows == [
        ["churn", "classification", "2", "production → 2 staging → 1",
         ", ".join(f"{k} {v:.4f}" for k, v in latest.metrics.items()), "", DESCRIPTION],
        ["spend", "regression", "0", "—", "not trained", "",
         store.get_model("spend").description]]
    metrics = list(store.get_model("churn").metrics)
    (versions,) = page.table("version", "created", "aliases")
    assert versions.headers == ["version", "created", "aliases", "estimator",
                                "rows train / test", "fit", *metrics, "feature service",
                                "training data", "code", "run"]
    assert versions.rows == version_rows(store, "churn")
    assert versions.rows[0][3] == "DummyClassifier"
    (history,) = page.table("at", "alias", "from", "to")
    assert history.rows == history_rows(store)
    assert "No version yet: run headwater train spend." in page.text


def test_one_chart_per_metric_with_the_threshold_and_the_version_that_misses_it(
        store: hw.FeatureStore, client: TestClient) -> None:
    for path in ("/models", "/models?model=churn"):
        charts = get(client, path).series()
        assert [c.attrs["data-check"] for c in charts] == list(store.get_model("churn").metrics)
        assert all(c.points == 2 and c.attrs["data-subject"] == "model:churn" for c in charts)
        (roc_auc,) = [c for c in charts if c.attrs["data-check"] == "roc_auc"]
        assert store.models.versions("churn")[0].metrics["roc_auc"] < THRESHOLD
        assert roc_auc.threshold and roc_auc.failed == 1  # version 1, the base rate
        assert not any(c.threshold or c.failed for c in charts if c is not roc_auc)


def test_one_model_in_detail(store: hw.FeatureStore, client: TestClient) -> None:
    page = get(client, "/models?model=churn")
    spec = store.get_model("churn")
    (fields,) = page.table("field", "value")
    values = dict((row[0], row[1]) for row in fields.rows)
    assert values["estimator"] == spec.estimator_class
    assert values["feature service"] == "churn_features"
    assert values["label"] == "churned from churn_labels"
    assert values["promotion rules"] == f"roc_auc on production, threshold {THRESHOLD:g}"
    assert values["metrics"] == ", ".join(spec.metrics)
    (versions,) = page.table("version", "created", "aliases")
    assert versions.rows == version_rows(store, "churn")
    (history,) = page.table("at", "alias", "from", "to")
    assert history.rows == history_rows(store)
    latest = store.models.versions("churn")[-1]
    (lineage,) = page.table("lineage", "value")
    shown = dict((row[0], row[1]) for row in lineage.rows)
    assert shown["training_fingerprint"] == f'"{latest.lineage["training_fingerprint"]}"'
    assert shown["feature_views"] == '{"customer_stats": 1}'
    assert f"{len(latest.features)} features: {', '.join(latest.features)}" in page.text
    assert "spend" not in page.text.replace("spend_30d", "")  # one model only


def test_a_spec_without_versions_has_a_page(client: TestClient) -> None:
    page = get(client, "/models?model=spend")
    assert "No version yet: run headwater train spend." in page.text
    assert page.series() == [] and page.table("version") == []


def test_descriptions_are_escaped_and_nothing_is_fetched(client: TestClient) -> None:
    for path in ("/models", "/models?model=churn"):
        page = get(client, path)
        assert "&lt;b&gt;&amp; churn" in page.raw and DESCRIPTION in page.text
        assert all(tag != "b" for tag, _ in page.tags)
        assert all(tag not in ("script", "img", "iframe") for tag, _ in page.tags)
        no_external_url(page)


def test_an_unknown_model_is_a_404(client: TestClient) -> None:
    page = get(client, "/models?model=no_such_model", 404)
    assert "NotFoundError" in page.text and "no_such_model" in page.text


def test_the_overview_shows_the_newest_versions_and_links_to_all(
        store: hw.FeatureStore, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import headwater.ui.models as page_module

    monkeypatch.setattr(page_module, "OVERVIEW_VERSIONS", 1)
    page = get(client, "/models")
    assert "The newest 1 of 2 versions" in page.text
    assert [row[0] for row in page.table("version", "created")[0].rows] == ["2"]
    assert 'href="/models?model=churn">all of them</a>' in client.get("/models").text
    detail = get(client, "/models?model=churn")
    (versions,) = detail.table("version", "created")
    assert [row[0] for row in versions.rows] == ["1", "2"]  # its own page: all of them
