"""The lineage page: source -> feature view -> on-demand view -> feature service -> model
version -> alias, drawn as an inline SVG graph and listed as a table of edges.

The graph is built from the registry and the model registry:

* a feature view reads its source (a push or stream source is drawn as itself);
* an on-demand view reads the feature views it names and its request sources (drawn in the
  source column);
* a feature service selects views and on-demand views (its registered projections; for a
  service a model version names but the registry no longer holds, the views the version
  read, from its lineage);
* a model version was trained on the feature service its lineage names;
* an alias points at a version.

``?model=NAME`` keeps that model's versions, their aliases and everything upstream of them;
a name that is neither registered nor trained is the store's NotFoundError. The layout is
ours: one column per kind, each column ordered by the mean position of its nodes'
neighbours (a few barycenter sweeps, which keeps edges from crossing much), boxes linked to
the catalog or the models page. The same edges follow as a table, for screen readers and
for anyone who prefers text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

from headwater.definitions import FeatureView, FeatureViewProjection, RequestSource
from headwater.errors import NotFoundError
from headwater.ui.catalog import PATH as CATALOG
from headwater.ui.catalog import source_name
from headwater.ui.html import esc, link, table

if TYPE_CHECKING:
    from headwater.store import FeatureStore

KINDS: dict[str, tuple[int, str]] = {
    "source": (0, "source"),
    "request_source": (0, "request source"),
    "feature_view": (1, "feature view"),
    "on_demand_feature_view": (2, "on-demand view"),
    "feature_service": (3, "feature service"),
    "model_version": (4, "model version"),
    "alias": (5, "alias"),
}
"""Node kind -> (column, label)."""
COLUMN_TITLES = ("Sources", "Feature views", "On-demand views", "Feature services",
                 "Model versions", "Aliases")
_FILL = ("#e8f0fe", "#e3f3e5", "#fdf0dc", "#f3e8fd", "#fbe4e4", "#eef1f6")

BOX_W, BOX_H, ROW_H, GAP, TOP, PAD = 150, 34, 46, 52, 28, 8
_CHARS = 22
"""Characters of a label that fit in a box; longer ones are cut (the tooltip has all)."""

Key = tuple[str, str]
"""A node: (kind, name)."""


@dataclass
class Graph:
    """Nodes (key -> link target, unescaped) and edges (from, to)."""

    nodes: dict[Key, str] = field(default_factory=dict)
    edges: set[tuple[Key, Key]] = field(default_factory=set)

    def add(self, key: Key, url: str) -> Key:
        self.nodes.setdefault(key, url)
        return key

    def link(self, source: Key, target: Key) -> None:
        self.edges.add((source, target))

    def keep(self, wanted: set[Key]) -> Graph:
        """The subgraph of ``wanted`` nodes."""
        return Graph({k: u for k, u in self.nodes.items() if k in wanted},
                     {(a, b) for a, b in self.edges if a in wanted and b in wanted})


def _url(path: str, **query: str) -> str:
    """A link target, unescaped (escaped where it is written)."""
    from urllib.parse import urlencode

    return f"{path}?{urlencode(query)}"


def lineage_graph(store: FeatureStore, model: str | None = None) -> Graph:
    """The lineage graph of ``store``'s project (see the module docstring), restricted to
    ``model``'s lineage when given."""
    graph = Graph()
    views = {v.name: v for v in store.list_feature_views()}
    on_demand = {v.name: v for v in store.list_on_demand_feature_views()}

    def view_node(name: str) -> Key:
        kind = "on_demand_feature_view" if name in on_demand else "feature_view"
        return graph.add((kind, name), _url(CATALOG, view=name))

    for view in views.values():
        name = source_name(view.source)
        graph.link(graph.add(("source", name), _url(CATALOG, q=name)), view_node(view.name))
    for odfv in on_demand.values():
        target = view_node(odfv.name)
        for item in odfv.sources:
            if isinstance(item, RequestSource):
                graph.link(graph.add(("request_source", item.name),
                                     _url(CATALOG, view=odfv.name)), target)
            elif isinstance(item, FeatureView | FeatureViewProjection):
                name = item.name if isinstance(item, FeatureView) else item.view
                graph.link(view_node(name), target)
    services = {s.name: s for s in store.list_feature_services()}
    for service in services.values():
        target = graph.add(("feature_service", service.name), _url(CATALOG, q=service.name))
        for projection in service.features:
            graph.link(view_node(projection.view), target)
    names = sorted(set(store.models.names()) | {m.name for m in store.list_models()})
    for name in names:
        url = _url("/models", model=name)
        numbers: dict[int, Key] = {}
        for version in store.models.versions(name):
            node = graph.add(("model_version", f"{name}:{version.version}"), url)
            numbers[version.version] = node
            used = version.lineage.get("feature_service")
            if isinstance(used, str):
                fs = graph.add(("feature_service", used), _url(CATALOG, q=used))
                graph.link(fs, node)
                if used not in services:  # gone from the registry: what it read then
                    for view_name in version.lineage.get("feature_views") or {}:
                        graph.link(view_node(str(view_name)), fs)
        for alias, number in sorted(store.models.aliases(name).items()):
            if number in numbers:
                graph.link(numbers[number], graph.add(("alias", f"{name}@{alias}"), url))
    if model is None:
        return graph
    if model not in names:
        raise NotFoundError(f"no model '{model}' in project '{store.project}'; models: "
                            f"{names or 'none'}. Fix: pick one of them, or open /lineage "
                            "for the whole project")
    start = {k for k in graph.nodes if k[0] == "model_version"
             and k[1].rpartition(":")[0] == model}
    return graph.keep(_reach(start, graph.edges, up=True) | _reach(start, graph.edges,
                                                                      up=False))


def _reach(start: set[Key], edges: Iterable[tuple[Key, Key]], *, up: bool) -> set[Key]:
    """``start`` and every node reached from it along the edges (against them if ``up``)."""
    step: dict[Key, list[Key]] = {}
    for a, b in edges:
        step.setdefault(b if up else a, []).append(a if up else b)
    seen, todo = set(start), list(start)
    while todo:
        for nxt in step.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def render(store: FeatureStore, query: Mapping[str, str]) -> str:
    """The lineage page's body: model filter links, the SVG graph, the table of edges."""
    model = query.get("model") or None
    graph = lineage_graph(store, model)
    names = sorted(set(store.models.names()) | {m.name for m in store.list_models()})
    filters = " · ".join(
        ["<strong>all</strong>" if model is None else link("/lineage", "all")]
        + [f"<strong>{esc(n)}</strong>" if n == model else link("/lineage", n, model=n)
           for n in names])
    head = f"<p class=muted>Models: {filters}</p>" if names else ""
    if not graph.nodes:
        return head + '<p class=muted>Nothing registered yet: apply definitions first.</p>'
    rows = sorted(graph.edges, key=lambda e: (KINDS[e[0][0]][0], e[0][1], KINDS[e[1][0]][0],
                                             e[1][1]))
    listing = table(["From kind", "From", "To kind", "To"], (
        [esc(KINDS[a[0]][1]), _node_link(graph, a), esc(KINDS[b[0]][1]), _node_link(graph, b)]
        for a, b in rows))
    return (f'{head}<div class=lineage style="overflow-x: auto">{svg(graph)}</div>'
            f'<h2>Edges</h2><div class="lineage-table">{listing}</div>')


def _node_link(graph: Graph, key: Key) -> str:
    return f'<a href="{esc(graph.nodes[key])}">{esc(key[1])}</a>'


# -- layout ------------------------------------------------------------------------------

VIRTUAL = "~"
"""The kind of the waypoints a long edge takes through the columns it crosses."""


@dataclass(frozen=True)
class Layout:
    """Where things go: each node's (column, row) in row units (columns centred), each
    edge's waypoints through the columns between its ends, the number of columns and the
    rows of the tallest."""

    places: dict[Key, tuple[int, float]]
    routes: dict[tuple[Key, Key], list[Key]]
    columns: list[int]
    rows: int


def layout(graph: Graph, sweeps: int = 4) -> Layout:
    """Columns by kind (empty ones left out); an edge that skips columns gets a waypoint in
    each, which takes a row there, so it never runs through a box; rows ordered by
    barycenter sweeps, forward by predecessors and backward by successors."""
    kinds = sorted({KINDS[k[0]][0] for k in graph.nodes})
    column = {k: kinds.index(KINDS[k[0]][0]) for k in graph.nodes}
    order: list[list[Key]] = [[] for _ in kinds]
    for key in sorted(graph.nodes, key=lambda k: (k[1], k[0])):
        order[column[key]].append(key)
    before: dict[Key, list[Key]] = {}
    after: dict[Key, list[Key]] = {}
    routes: dict[tuple[Key, Key], list[Key]] = {}
    for a, b in sorted(graph.edges):
        route = [(VIRTUAL, f"{_id(a)} > {_id(b)} @ {c}")
                 for c in range(column[a] + 1, column[b])]
        for index, waypoint in enumerate(route, start=column[a] + 1):
            order[index].append(waypoint)
        routes[(a, b)] = route
        chain = [a, *route, b]
        for x, y in pairwise(chain):
            after.setdefault(x, []).append(y)
            before.setdefault(y, []).append(x)
    rows = max(len(c) for c in order)

    def place() -> dict[Key, tuple[int, float]]:
        return {k: (i, rank + (rows - len(c)) / 2)
                for i, c in enumerate(order) for rank, k in enumerate(c)}

    for sweep in range(sweeps):
        neighbours = before if sweep % 2 == 0 else after
        indices = range(len(order)) if sweep % 2 == 0 else range(len(order) - 1, -1, -1)
        for index in indices:
            at = place()
            order[index].sort(key=lambda k: _barycenter(k, neighbours, at))
    return Layout(place(), routes, kinds, rows)


def _barycenter(key: Key, neighbours: Mapping[Key, list[Key]],
                at: Mapping[Key, tuple[int, float]]) -> tuple[float, str]:
    near = [at[n][1] for n in neighbours.get(key, ())]
    return (sum(near) / len(near) if near else at[key][1], key[1])


def _curve(start: tuple[float, float], end: tuple[float, float]) -> str:
    middle = (start[0] + end[0]) / 2
    return (f" C{middle:.1f},{start[1]:.1f} {middle:.1f},{end[1]:.1f} "
            f"{end[0]:.1f},{end[1]:.1f}")


def svg(graph: Graph) -> str:
    """The graph as inline SVG: a title per column, a box per node (a link to its page, the
    full name as tooltip) and a curve per edge, straight through the columns it crosses."""
    drawn = layout(graph)

    def corner(key: Key) -> tuple[float, float]:
        column, row = drawn.places[key]
        return PAD + column * (BOX_W + GAP), TOP + row * ROW_H

    width = PAD * 2 + len(drawn.columns) * BOX_W + (len(drawn.columns) - 1) * GAP
    height = TOP + drawn.rows * ROW_H + PAD
    parts = [f'<svg class=lineage-graph width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role=img aria-label="Lineage graph">'
             '<defs><marker id=hw-arrow viewBox="0 0 8 8" refX=8 refY=4 markerWidth=7 '
             'markerHeight=7 orient=auto><path d="M0,0 L8,4 L0,8 z" fill="#8a93a6"/>'
             "</marker></defs>"]
    for index, kind in enumerate(drawn.columns):
        parts.append(f'<text x="{PAD + index * (BOX_W + GAP)}" y="14" '
                     f'font-weight="600">{esc(COLUMN_TITLES[kind])}</text>')
    middle = BOX_H / 2
    for (a, b), route in sorted(drawn.routes.items()):
        x, y = corner(a)
        here = (x + BOX_W, y + middle)
        d = f"M{here[0]:.1f},{here[1]:.1f}"
        for waypoint in route:
            x, y = corner(waypoint)
            d += _curve(here, (x, y + middle)) + f" L{x + BOX_W:.1f},{y + middle:.1f}"
            here = (x + BOX_W, y + middle)
        x, y = corner(b)
        d += _curve(here, (x - 1, y + middle))
        parts.append(f'<path class=edge data-from="{esc(_id(a))}" data-to="{esc(_id(b))}" '
                     f'd="{d}" fill="none" stroke="#8a93a6" stroke-width="1.3" '
                     'marker-end="url(#hw-arrow)"/>')
    for key in sorted(graph.nodes):
        x, top = corner(key)
        label = key[1] if len(key[1]) <= _CHARS else key[1][:_CHARS - 1] + "…"
        column, title = KINDS[key[0]]
        parts.append(
            f'<a class=node href="{esc(graph.nodes[key])}" data-id="{esc(_id(key))}">'
            f"<title>{esc(title)}: {esc(key[1])}</title>"
            f'<rect x="{x}" y="{top:.1f}" width="{BOX_W}" height="{BOX_H}" rx="5" '
            f'fill="{_FILL[column]}" stroke="#b7bfcf"/>'
            f'<text x="{x + 8}" y="{top + 13:.1f}" font-size="9" fill="#5b6478">'
            f"{esc(title)}</text>"
            f'<text x="{x + 8}" y="{top + 27:.1f}">{esc(label)}</text></a>')
    parts.append("</svg>")
    return "".join(parts)


def _id(key: Key) -> str:
    return f"{key[0]}:{key[1]}"


__all__ = ["KINDS", "Graph", "Layout", "layout", "lineage_graph", "render", "svg"]
