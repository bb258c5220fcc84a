"""The lineage page over the catalog tests' repo (churn trained twice and promoted, spend
trained once, merchant views with an on-demand view and a request source): the edges of the
table and of the SVG equal the lineage computed from the store's API, every node links to its
page, ``?model=`` keeps one model's lineage, the layout keeps kinds in columns left to right
without overlapping boxes, and names are escaped."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.definitions import FeatureView, FeatureViewProjection, RequestSource
from headwater.ui.app import create_ui
from headwater.ui.lineage import VIRTUAL, Graph, layout
from tests.ui.test_catalog import NASTY, PROFILES, Page, build_repo, get, source_name

Node = tuple[str, str]
KIND_LABELS = {"source": "source", "request source": "request_source",
               "feature view": "feature_view", "on-demand view": "on_demand_feature_view",
               "feature service": "feature_service", "model version": "model_version",
               "alias": "alias"}
COLUMN = {"source": 0, "request_source": 0, "feature_view": 1, "on_demand_feature_view": 2,
          "feature_service": 3, "model_version": 4, "alias": 5}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hw.FeatureStore]:
    opened = build_repo(tmp_path_factory.mktemp("lineage") / "repo")
    yield opened
    opened.close()


def expected_edges(store: hw.FeatureStore) -> set[tuple[Node, Node]]:
    """The lineage from the store's API: view sources, on-demand inputs, service
    selections, the service each model version names, and the aliases."""
    on_demand = {v.name for v in store.list_on_demand_feature_views()}

    def view(name: str) -> Node:
        return ("on_demand_feature_view" if name in on_demand else "feature_view", name)

    edges = {(("source", source_name(v.source)), ("feature_view", v.name))
             for v in store.list_feature_views()}
    for odfv in store.list_on_demand_feature_views():
        for item in odfv.sources:
            if isinstance(item, RequestSource):
                edges.add((("request_source", item.name), view(odfv.name)))
            else:
                assert isinstance(item, FeatureView | FeatureViewProjection)
                name = item.name if isinstance(item, FeatureView) else item.view
                edges.add((view(name), view(odfv.name)))
    for service in store.list_feature_services():
        edges |= {(view(p.view), ("feature_service", service.name)) for p in service.features}
    for name in store.models.names():
        for version in store.models.versions(name):
            edges.add((("feature_service", version.lineage["feature_service"]),
                       ("model_version", f"{name}:{version.version}")))
        for alias, number in store.models.aliases(name).items():
            edges.add((("model_version", f"{name}:{number}"), ("alias", f"{name}@{alias}")))
    return edges


def table_edges(page: Page) -> set[tuple[Node, Node]]:
    return {((KIND_LABELS[row["From kind"]], row["From"]),
             (KIND_LABELS[row["To kind"]], row["To"])) for row in page.tables["Edges"]}


def split(node_id: str) -> Node:
    kind, _, name = node_id.partition(":")
    return kind, name


def svg_edges(page: Page) -> set[tuple[Node, Node]]:
    return {(split(a["data-from"]), split(a["data-to"]))
            for tag, a in page.elements if tag == "path" and a.get("class") == "edge"}


def svg_nodes(page: Page) -> dict[Node, dict[str, str]]:
    """Each node's link and box (the ``rect`` after its ``a``)."""
    nodes: dict[Node, dict[str, str]] = {}
    current: Node | None = None
    for tag, attrs in page.elements:
        if tag == "a" and attrs.get("class") == "node":
            current = split(attrs["data-id"])
            nodes[current] = {"href": attrs["href"]}
        elif tag == "rect" and current is not None:
            nodes[current] |= {"x": attrs["x"], "y": attrs["y"]}
            current = None
    return nodes


def expected_link(node: Node, edges: set[tuple[Node, Node]]) -> str:
    kind, name = node
    if kind in ("feature_view", "on_demand_feature_view"):
        return f"/catalog?view={name}"
    if kind in ("model_version", "alias"):
        return "/models?" + urlencode({"model": name.split(":")[0].split("@")[0]})
    if kind == "request_source":
        (reader,) = [b for a, b in edges if a == node]
        return f"/catalog?view={reader[1]}"
    return "/catalog?" + urlencode({"q": name})


def test_edges_equal_the_store_lineage(store: hw.FeatureStore, client: TestClient) -> None:
    _, page = get(client, "/lineage")
    expected = expected_edges(store)
    assert table_edges(page) == svg_edges(page) == expected
    assert (("source", PROFILES), ("feature_view", "merchant_profile")) in expected
    assert {b[1] for a, b in expected if b[0] == "alias"} == {"churn@production",
                                                              "churn@staging"}
    assert {b[1] for a, b in expected if b[0] == "model_version"} == {
        "churn:1", "churn:2", "spend:1"}
    assert (("request_source", "checkout"), ("on_demand_feature_view", "risky_amount")) in (
        expected)


def test_every_node_links_to_its_page(store: hw.FeatureStore, client: TestClient) -> None:
    _, page = get(client, "/lineage")
    edges = expected_edges(store)
    nodes = svg_nodes(page)
    assert set(nodes) == {n for edge in edges for n in edge}
    for node, drawn in nodes.items():
        assert drawn["href"] == expected_link(node, edges), node
    for row_links, row in zip(page.links["Edges"], page.tables["Edges"], strict=True):
        source = (KIND_LABELS[row["From kind"]], row["From"])
        assert row_links["From"] == [nodes[source]["href"]]
    for target in {d["href"] for d in nodes.values()}:
        assert client.get(target).status_code == 200, target


def test_layout_keeps_kinds_in_columns_left_to_right(store: hw.FeatureStore,
                                                     client: TestClient) -> None:
    _, page = get(client, "/lineage")
    nodes = svg_nodes(page)
    xs = {kind: {float(d["x"]) for n, d in nodes.items() if n[0] == kind} for kind in COLUMN}
    assert all(len(x) == 1 for x in xs.values())  # every kind is drawn, in one column
    x = {kind: found.pop() for kind, found in xs.items()}
    for a, left in COLUMN.items():
        for b, right in COLUMN.items():  # columns keep the order of the kinds
            assert (x[a] < x[b]) == (left < right)
    boxes = [(float(d["x"]), float(d["y"])) for d in nodes.values()]
    assert len(set(boxes)) == len(boxes)  # no two boxes in one place
    for start, end in expected_edges(store):
        assert float(nodes[start]["x"]) < float(nodes[end]["x"])


def test_model_filter_keeps_one_models_lineage(store: hw.FeatureStore,
                                               client: TestClient) -> None:
    _, page = get(client, "/lineage?model=churn")
    everything = expected_edges(store)
    services = {v.lineage["feature_service"] for v in store.models.versions("churn")}
    views = {p.view for s in services for p in store.get_feature_service(s).features}
    sources = {source_name(store.get_feature_view(v).source) for v in views}
    expected = {(a, b) for a, b in everything
                if (b[0] == "model_version" and b[1].startswith("churn:"))
                or (b[0] == "alias" and b[1].startswith("churn@"))
                or (b[0] == "feature_service" and b[1] in services)
                or (b[0] == "feature_view" and b[1] in views and a[1] in sources)}
    assert table_edges(page) == svg_edges(page) == expected
    assert expected == {
        (("source", "data/customer_stats.parquet"), ("feature_view", "customer_stats")),
        (("feature_view", "customer_stats"), ("feature_service", "churn_features")),
        (("feature_service", "churn_features"), ("model_version", "churn:1")),
        (("feature_service", "churn_features"), ("model_version", "churn:2")),
        (("model_version", "churn:1"), ("alias", "churn@production")),
        (("model_version", "churn:2"), ("alias", "churn@staging"))}
    _, spend = get(client, "/lineage?model=spend")
    assert {b for _, b in table_edges(spend) if b[0] == "model_version"} == {
        ("model_version", "spend:1")}
    assert not [b for _, b in table_edges(spend) if b[0] == "alias"]


def test_unknown_model_is_not_found(client: TestClient) -> None:
    text, _ = get(client, "/lineage?model=nope", status=404)
    assert "NotFoundError" in text and "churn" in text


def test_names_are_escaped_and_urls_local(client: TestClient) -> None:
    text, page = get(client, "/lineage")
    assert NASTY not in text and "&lt;b&gt;&amp;" in text
    assert "b" not in {tag for tag, _ in page.elements}
    (source,) = [a for tag, a in page.elements if tag == "a" and NASTY in a.get("data-id", "")]
    assert source["href"] == "/catalog?" + urlencode({"q": PROFILES})
    assert f"source: {PROFILES}" in page.text
    targets = [v for _, a in page.elements for k, v in a.items()
               if k in ("href", "src", "action", "xmlns")]
    assert targets and all(t.startswith(("/", "#")) and "http" not in t for t in targets)
    assert "<script" not in text.lower()


def test_empty_project(tmp_path: Path) -> None:
    (tmp_path / "headwater.yaml").write_text("project: empty\n")
    with hw.FeatureStore(tmp_path) as store:
        text, page = get(TestClient(create_ui(store, api_keys=None)), "/lineage")
    assert "Nothing registered yet" in text
    assert not [tag for tag, _ in page.elements if tag == "svg"]


def test_layout_orders_rows_so_edges_do_not_cross() -> None:
    """Sorted by name, the views would cross the sources' edges (a -> z, b -> y) and the
    long edge a -> service would cross the views' column; barycenter sweeps and the
    waypoint of the long edge untangle both."""
    graph = Graph()
    for key in [("source", "a"), ("source", "b"), ("feature_view", "y"),
                ("feature_view", "z"), ("feature_service", "s")]:
        graph.add(key, "/")
    for a, b in [(("source", "a"), ("feature_view", "z")),
                 (("source", "b"), ("feature_view", "y")),
                 (("feature_view", "z"), ("feature_service", "s")),
                 (("feature_view", "y"), ("on_demand_feature_view", "o")),
                 (("on_demand_feature_view", "o"), ("feature_service", "s"))]:
        graph.add(b, "/")
        graph.link(a, b)
    drawn = layout(graph)
    assert drawn.columns == [0, 1, 2, 3]
    (waypoint,) = drawn.routes[(("feature_view", "z"), ("feature_service", "s"))]
    segments = []
    for (a, b), route in drawn.routes.items():
        chain = [a, *route, b]
        segments += list(pairwise(chain))
    assert waypoint[0] == VIRTUAL and drawn.places[waypoint][0] == 2
    for a, b in segments:
        for c, d in segments:
            if drawn.places[a][0] == drawn.places[c][0]:
                rows = drawn.places[a][1] - drawn.places[c][1]
                assert rows * (drawn.places[b][1] - drawn.places[d][1]) >= 0, (a, b, c, d)
    boxes = list(drawn.places.values())
    assert len(set(boxes)) == len(boxes)
