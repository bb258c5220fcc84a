"""The catalog page over a real repo: the churn project (trained, promoted, partly
materialized) plus merchant definitions whose descriptions, owners, tags and a source path
hold ``<b>&``: every registered object shows with the store's values, search narrows exactly,
freshness is the greatest event time of the Parquet files, and everything is escaped."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.definitions import FeatureView, FileSource, OnDemandFeatureView, PushSource, Source
from headwater.repo.loader import load_definitions
from headwater.testing.models import FEATURES_FILE, START, churn_repo
from headwater.ui.app import create_ui
from headwater.ui.html import duration, when

NASTY = "<b>&"
PAYMENTS = f"data/pay{NASTY}"
PROFILES = f"data/{NASTY}profiles.parquet"
"""An unnamed source: the catalog and lineage name it by this path."""
MATERIALIZED = START + timedelta(days=5)

MERCHANT_PY = f'''
from datetime import timedelta

import pandas as pd

import headwater as hw

merchant = hw.Entity("merchant", join_keys=["merchant_id"], description="A {NASTY} shop",
                     owner="risk@{NASTY}", tags={{"team": "{NASTY}"}})
payments = hw.PushSource("payments", description="Card payments {NASTY}",
                         batch_source=hw.FileSource("{PAYMENTS}/", timestamp_field="ts"))
merchant_payments = hw.FeatureView(
    name="merchant_payments", entities=[merchant], source=payments,
    aggregations=[hw.Aggregation("amount", "sum", timedelta(hours=1), name="amount_sum_1h"),
                  hw.Aggregation("amount", "count", timedelta(days=1))],
    description="{NASTY} payments per merchant", owner="risk team",
    tags={{"tier": "gold", "note": "{NASTY}"}})
merchant_profile = hw.FeatureView(
    name="merchant_profile", entities=[merchant],
    source=hw.FileSource("{PROFILES}", timestamp_field="updated_at"),
    schema=[hw.Field("risk", hw.Float64, description="risk {NASTY} score"),
            hw.Field("category", hw.String)],
    ttl=timedelta(days=30), online=False, owner="ops")
checkout = hw.RequestSource("checkout", schema=[hw.Field("amount", hw.Float64)])


@hw.on_demand_feature_view(sources=[merchant_profile[["risk"]], checkout],
                           schema=[hw.Field("risky_amount", hw.Float64)], owner="risk team",
                           tags={{"kind": "realtime"}})
def risky_amount(batch):
    """Amount weighted by the merchant's risk {NASTY}"""
    return pd.DataFrame({{"risky_amount": batch["amount"] * batch["risk"]}})


fraud = hw.FeatureService("fraud", description="Fraud {NASTY}", owner="risk team",
                          features=[merchant_payments, risky_amount,
                                    "merchant_profile:category"])
'''


def build_repo(folder: Path) -> hw.FeatureStore:
    """The churn repo (30 customers x 20 days, with the spend model) plus ``merchant.py``;
    applied, churn trained twice (production -> 1, staging -> 2), spend trained once, and
    customer_stats materialized up to :data:`MATERIALIZED`."""
    churn_repo(folder, customers=30, days=20, regression=True)
    (folder / "merchant.py").write_text(MERCHANT_PY)
    stamp = pa.timestamp("us", "UTC")
    for day in (1, 2):
        part = folder / PAYMENTS / f"date=2024-01-0{day}"
        part.mkdir(parents=True)
        pq.write_table(pa.table({
            "merchant_id": pa.array([1, 2, 1], pa.int64()),
            "ts": pa.array([START + timedelta(days=day - 1, hours=h) for h in (1, 5, 3)],
                           stamp),
            "amount": [10.0, 20.5, 3.0]}), part / "events.parquet")
    pq.write_table(pa.table({
        "merchant_id": pa.array([1, 2], pa.int64()),
        "updated_at": pa.array([START + timedelta(days=3), START + timedelta(days=9)], stamp),
        "risk": [0.5, 0.1], "category": ["food", "travel"]}), folder / PROFILES)
    store = hw.FeatureStore(folder)
    store.apply(load_definitions(folder), prune=True)
    store.train("churn")
    store.train("churn")
    store.train("spend")
    store.promote("churn", 1, force=True)
    store.promote("churn", 2, "staging", force=True)
    store.materialize(START, MATERIALIZED, views=["customer_stats"])
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hw.FeatureStore]:
    opened = build_repo(tmp_path_factory.mktemp("catalog") / "repo")
    yield opened
    opened.close()


class Page(HTMLParser):
    """Tables by the heading before them (a table with a header row as a list of row dicts
    in ``tables``; a table of ``<th>`` key, ``<td>`` value rows as a dict in ``facts``),
    the links of each cell, the attributes of every element, and all text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.links: dict[str, list[dict[str, list[str]]]] = {}
        self.facts: dict[str, dict[str, str]] = {}
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self._heading = self._buffer = ""
        self._in: str | None = None
        self._head = False
        self._headers: list[str] = []
        self._row: list[str] = []
        self._row_links: list[list[str]] = []
        self._rows: list[tuple[list[str], list[list[str]]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        if tag in ("h2", "h3", "th", "td"):
            self._in, self._buffer = tag, ""
            self._row_links.append([])
        elif tag == "table":
            self._headers, self._rows = [], []
        elif tag == "thead":
            self._head = True
        elif tag == "tr":
            self._row, self._row_links = [], []
        elif tag == "br" and self._in:
            self._buffer += "\n"
        elif tag == "a" and self._in in ("td", "th"):
            self._row_links[-1].append(values.get("href", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "h3") and self._in == tag:
            self._heading, self._in = self._buffer.strip(), None
        elif tag in ("th", "td") and self._in == tag:
            (self._headers if self._head else self._row).append(self._buffer.strip())
            self._in = None
        elif tag == "thead":
            self._head = False
        elif tag == "tr" and self._row:
            self._rows.append((self._row, self._row_links))
        elif tag == "table":
            if self._headers:  # the one-cell row of an empty table is left out
                rows = [r for r in self._rows if len(r[0]) == len(self._headers)]
                self.tables[self._heading] = [dict(zip(self._headers, r, strict=True))
                                              for r, _ in rows]
                self.links[self._heading] = [dict(zip(self._headers, ls, strict=True))
                                             for _, ls in rows]
            else:
                self.facts[self._heading] = {r[0]: r[1] for r, _ in self._rows}

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in:
            self._buffer += data


def get(client: TestClient, url: str, status: int = 200) -> tuple[str, Page]:
    answer = client.get(url)
    assert answer.status_code == status, answer.text
    return answer.text, Page(answer.text)


def source_name(source: Source) -> str:
    """A file source by its name or path, a push source by its name."""
    if isinstance(source, FileSource):
        return source.name or source.path
    assert isinstance(source, PushSource)
    return source.name


def tags(values: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(values.items()))


def features(view: FeatureView | OnDemandFeatureView) -> str:
    """The features cell: name and type, and an aggregated view's aggregation."""
    aggregations = {a.name: a for a in getattr(view, "aggregations", ())}
    return "\n".join(
        f"{f.name} {f.dtype}" + (f" = {a.function}({a.column}) over {duration(a.window)}"
                                 if (a := aggregations.get(f.name)) else "")
        for f in view.features)


def ago(span: timedelta) -> str:
    """The age as the page writes it: days and hours here (the data are from 2024)."""
    return f"{span.days} d {span.seconds // 3600} h"


def latest(path: Path, column: str) -> datetime:
    """The greatest ``column`` of the Parquet file or folder at ``path``, read by pyarrow."""
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    times = [pc.max(pq.read_table(f, columns=[column]).column(0)).as_py() for f in files]
    found: datetime = max(times)
    return found


def test_every_object_shows_with_the_store_values(store: hw.FeatureStore,
                                                  client: TestClient) -> None:
    _, page = get(client, "/catalog")
    entities = {row["Name"]: row for row in page.tables["Entities"]}
    assert set(entities) == {e.name for e in store.list_entities()} == {"customer", "merchant"}
    for entity in store.list_entities():
        assert entities[entity.name] == {
            "Name": entity.name, "Join keys": ", ".join(entity.join_keys),
            "Description": entity.description, "Owner": entity.owner,
            "Tags": tags(entity.tags)}
    views = {row["Name"]: row for row in page.tables["Feature views"]}
    assert set(views) == {v.name for v in store.list_feature_views()} == {
        "customer_stats", "merchant_payments", "merchant_profile"}
    for view in store.list_feature_views():
        row = views[view.name]
        assert row["Entities"] == ", ".join(e.name for e in view.entities)
        assert row["Source"] == source_name(view.source)
        assert row["Features"] == features(view)
        assert row["TTL"] == html.unescape(duration(view.ttl))
        assert row["Online"] == ("yes" if view.online else "no")
        assert (row["Owner"], row["Description"]) == (view.owner, view.description)
        assert row["Tags"] == tags(view.tags)
    assert views["merchant_payments"]["Features"] == (
        "amount_sum_1h float64 = sum(amount) over 1 h\n"
        "amount_count_1d int64 = count(amount) over 1 d")
    assert views["customer_stats"]["TTL"] == "3 d"
    on_demand = {row["Name"]: row for row in page.tables["On-demand views"]}
    (odfv,) = store.list_on_demand_feature_views()
    assert on_demand == {odfv.name: {
        "Name": "risky_amount", "Inputs": "merchant_profile [risk]\nrequest checkout (amount)",
        "Features": features(odfv), "Mode": odfv.mode, "Owner": odfv.owner,
        "Description": odfv.description, "Tags": tags(odfv.tags)}}
    services = {row["Name"]: row for row in page.tables["Feature services"]}
    assert set(services) == {s.name for s in store.list_feature_services()} == {
        "churn_features", "fraud"}
    for service in store.list_feature_services():
        assert services[service.name]["Features"] == "\n".join(
            f"{p.view}: " + (", ".join(p.features) if p.features else "all features")
            for p in service.features)
        assert services[service.name]["Description"] == service.description
    sources = {row["Name"]: row for row in page.tables["Sources"]}
    expected = {v.source for v in store.list_feature_views()} | {
        m.label.source for m in store.list_models()}
    assert set(sources) == {source_name(s) for s in expected} == {
        FEATURES_FILE, "payments", PROFILES, "churn_labels"}
    assert sources["payments"]["Kind"] == "push"
    assert sources["payments"]["Path / query"] == f"{PAYMENTS}/"
    assert sources[PROFILES]["Timestamp field"] == "updated_at"
    assert sources["churn_labels"]["Used by"] == "churn (labels), spend (labels)"
    assert sources[FEATURES_FILE]["Used by"] == "customer_stats"


def test_freshness_is_the_latest_event_of_the_batch_source(store: hw.FeatureStore,
                                                           client: TestClient) -> None:
    before = datetime.now(UTC)
    _, page = get(client, "/catalog")
    after = datetime.now(UTC)
    repo = store.repo_path
    expected = {"customer_stats": latest(repo / FEATURES_FILE, "ts"),
                "merchant_payments": latest(repo / PAYMENTS, "ts"),
                "merchant_profile": latest(repo / PROFILES, "updated_at")}
    assert expected["merchant_payments"] == START + timedelta(days=1, hours=5)
    rows = {row["Name"]: row for row in page.tables["Feature views"]}
    for name, moment in expected.items():
        ages = {ago(before - moment), ago(after - moment)}
        materialized = ([f"materialized to {when(MATERIALIZED)}"]
                        if name == "customer_stats" else [])
        assert rows[name]["Freshness"] in {
            "\n".join([when(moment), f"{a} ago", *materialized]) for a in ages}
    _, detail = get(client, "/catalog?view=customer_stats")
    facts = detail.facts["customer_stats"]
    assert facts["Latest event"] == when(expected["customer_stats"])
    assert facts["Age"] in {ago(before - expected["customer_stats"]),
                            ago(datetime.now(UTC) - expected["customer_stats"])}
    assert facts["Materialized up to"] == when(MATERIALIZED)
    assert get(client, "/catalog?view=merchant_profile")[1].facts["merchant_profile"][
        "Materialized up to"] == "—"


def section_names(page: Page) -> dict[str, set[str]]:
    return {section: {row["Name"] for row in page.tables[section]}
            for section in ("Entities", "Sources", "Feature views", "On-demand views",
                            "Feature services")}


@pytest.mark.parametrize(("q", "expected"), [
    ("RISK", {"Entities": {"merchant"}, "Sources": set(),
              "Feature views": {"merchant_payments", "merchant_profile"},
              "On-demand views": {"risky_amount"}, "Feature services": {"fraud"}}),
    ("sessions_7d", {"Entities": set(), "Sources": set(), "Feature views": {"customer_stats"},
                     "On-demand views": set(), "Feature services": {"churn_features"}}),
    ("risk gold", {"Entities": set(), "Sources": set(), "Feature views": {"merchant_payments"},
                   "On-demand views": set(), "Feature services": set()}),
    ("payments", {"Entities": set(), "Sources": {"payments"},
                  "Feature views": {"merchant_payments"}, "On-demand views": set(),
                  "Feature services": set()}),
    (NASTY, {"Entities": {"merchant"}, "Sources": {"payments", PROFILES},
             "Feature views": {"merchant_payments", "merchant_profile"},
             "On-demand views": {"risky_amount"}, "Feature services": {"fraud"}}),
])
def test_search_narrows_exactly(store: hw.FeatureStore, client: TestClient, q: str,
                                expected: dict[str, set[str]]) -> None:
    _, page = get(client, "/catalog?" + urlencode({"q": q}))
    found = section_names(page)
    assert found == expected
    # the same rule computed from the store: every word in a name, description, owner,
    # tag or feature (name or description)
    words = q.lower().split()

    def hit(texts: list[str]) -> bool:
        return all(any(w in t.lower() for t in texts) for w in words)

    views: list[FeatureView | OnDemandFeatureView] = [
        *store.list_feature_views(), *store.list_on_demand_feature_views()]
    assert found["Feature views"] | found["On-demand views"] == {
        v.name for v in views if hit([v.name, v.description, v.owner, tags(v.tags),
                                      *(t for f in v.features for t in (f.name,
                                                                         f.description))])}
    (form,) = [a for tag, a in page.elements if tag == "form"]
    assert form["class"] == "search" and form.get("method") == "get"
    assert ("input", {"type": "search", "name": "q", "value": q}) in [
        (tag, {k: a[k] for k in ("type", "name", "value") if k in a})
        for tag, a in page.elements if tag == "input"]


def test_aggregated_view_detail(store: hw.FeatureStore, client: TestClient) -> None:
    _, page = get(client, "/catalog?view=merchant_payments")
    view = store.get_feature_view("merchant_payments")
    facts = page.facts[view.name]
    assert facts["Kind"] == "aggregated feature view"
    assert facts["Version"] == str(store.registry.record("feature_view", view.name).version)
    assert facts["Entities"] == "merchant (merchant_id)"
    assert facts["Source"] == f"payments push · {PAYMENTS}/ · timestamp ts"
    assert facts["Owner"] == "risk team" and facts["Description"] == view.description
    assert facts["Used by"] == "fraud (feature service)"
    assert page.tables["Features"] == [
        {"Feature": f.name, "Type": str(f.dtype), "Description": f.description}
        for f in view.features]
    assert page.tables["Aggregations"] == [
        {"Feature": a.name, "Function": a.function, "Column": a.column,
         "Window": duration(a.window),
         "Granularity": duration(timedelta(microseconds=a.granularity_us)),
         "Description": a.description} for a in view.aggregations]
    assert [r["Window"] for r in page.tables["Aggregations"]] == ["1 h", "1 d"]


def test_on_demand_view_detail(store: hw.FeatureStore, client: TestClient) -> None:
    text, page = get(client, "/catalog?view=risky_amount")
    odfv = store.get_on_demand_feature_view("risky_amount")
    facts = page.facts[odfv.name]
    assert facts["Inputs"] == "merchant_profile [risk]\nrequest checkout (amount)"
    assert facts["Used by"] == "fraud (feature service)"
    assert page.tables["Features"] == [
        {"Feature": "risky_amount", "Type": "float64", "Description": ""}]
    assert html.escape(odfv.function_source, quote=True) in text
    _, profile = get(client, "/catalog?view=merchant_profile")
    facts = profile.facts["merchant_profile"]
    assert facts["Used by"] == ("risky_amount (on-demand view), fraud (feature service)")
    assert facts["TTL"] == "30 d" and facts["Online"] == "no"


def test_unknown_view_is_not_found(client: TestClient) -> None:
    text, _ = get(client, "/catalog?view=nope", status=404)
    assert "NotFoundError" in text and "nope" in text


def test_values_are_escaped_and_urls_local(client: TestClient) -> None:
    for url in ("/catalog", "/catalog?view=merchant_payments", "/catalog?view=risky_amount",
                "/catalog?q=%3Cb%3E%26"):
        text, page = get(client, url)
        assert NASTY not in text
        assert "&lt;b&gt;&amp;" in text
        assert "b" not in {tag for tag, _ in page.elements}
        assert NASTY in "".join(page.text)
        targets = [v for _, a in page.elements for k, v in a.items()
                   if k in ("href", "src", "action")]
        assert targets and all(t.startswith(("/", "#")) and "http" not in t for t in targets)
        assert "<script" not in text.lower()


def test_links_lead_to_view_details(store: hw.FeatureStore, client: TestClient) -> None:
    _, page = get(client, "/catalog")
    targets = [row["Name"] for row in page.links["Feature views"]]
    assert targets == [[f"/catalog?view={v.name}"] for v in store.list_feature_views()]
    for (target,) in targets:
        view = store.get_feature_view(target.split("=")[1])
        assert get(client, target)[1].facts[view.name]["Entities"] == ", ".join(
            f"{e.name} ({', '.join(e.join_keys)})" for e in view.entities)


def test_an_unreadable_source_shows_its_error(tmp_path: Path) -> None:
    """A view whose file is gone keeps the catalog up and says why it has no freshness."""
    (tmp_path / "data").mkdir()
    (tmp_path / "headwater.yaml").write_text("project: gone\n")
    (tmp_path / "views.py").write_text(
        "import headwater as hw\n"
        "user = hw.Entity('user', join_keys=['user_id'])\n"
        "clicks = hw.FeatureView(name='clicks', entities=[user], schema=[hw.Field('n', "
        "hw.Int64)], source=hw.FileSource('data/clicks.parquet', timestamp_field='ts'))\n")
    pq.write_table(pa.table({"user_id": [1], "ts": pa.array([START], pa.timestamp("us", "UTC")),
                             "n": [3]}), tmp_path / "data/clicks.parquet")
    with hw.FeatureStore(tmp_path) as store:
        store.apply(load_definitions(tmp_path))
        (tmp_path / "data/clicks.parquet").unlink()
        _, page = get(TestClient(create_ui(store, api_keys=None)), "/catalog")
    (row,) = page.tables["Feature views"]
    assert row["Name"] == "clicks"
    assert row["Freshness"].startswith("unreadable FileSource 'data/clicks.parquet': nothing at")
