"""The feature catalog page: every registered definition, its freshness, and search.

The overview lists entities, sources (those of the feature views and the label sources of
the model specs), feature views, on-demand views and feature services. ``?q=`` keeps the
objects whose name, description, owner, tags (``key=value``) or feature names (with the
features' descriptions) hold every whitespace-separated word of the query, ignoring case;
an entity also matches on its join keys, a feature service on the features it selects, a
source on its name, path or query, topic and description. ``?view=NAME`` shows
one feature view or on-demand view in full; an unknown name is the store's NotFoundError.

Freshness of a feature view is the latest event time in its batch source, read by the
offline engine (``store.offline.read_source`` of the source's timestamp column, the same
time rules as the point-in-time join; one column scan per distinct source and page view),
and its age now. Next to it the page shows how far
the view is materialized: the registry's materialization watermark. A source the engine
cannot read (a DataError: missing file, bad column) shows that error in its freshness cell,
so one broken source does not hide the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from headwater.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    Field,
    FileSource,
    OnDemandFeatureView,
    PushSource,
    RequestSource,
    Source,
    SQLSource,
    StreamSource,
)
from headwater.errors import HeadwaterError
from headwater.ui.html import badge, duration, esc, link, table, when

if TYPE_CHECKING:
    from headwater.store import FeatureStore

PATH = "/catalog"


@dataclass(frozen=True)
class Freshness:
    """How current a feature view's data is: the latest event time of its batch source
    (None when it has no rows), its age at ``now``, the materialization watermark (None when
    never materialized) and, when the source cannot be read, the error message."""

    latest: datetime | None
    age: timedelta | None
    materialized: datetime | None
    error: str = ""


def latest_event(store: FeatureStore, source: Source) -> datetime | None:
    """The greatest event time of ``source``'s rows as the offline engine reads them (UTC),
    or None when it has none (one ``max``, no rows read out). DataError when the source
    cannot be read."""
    return store.offline.latest_time(source)


def freshness(store: FeatureStore, views: Iterable[FeatureView]) -> dict[str, Freshness]:
    """The :class:`Freshness` of each view, by name; a source shared by views is read once."""
    now = datetime.now(UTC)
    marks = store.registry.backend.watermarks(store.project)
    latest: dict[Source, datetime | HeadwaterError | None] = {}
    found: dict[str, Freshness] = {}
    for view in views:
        source = view.batch_source
        if source not in latest:
            try:
                latest[source] = latest_event(store, source)
            except HeadwaterError as exc:  # unreadable or unreachable: shown in the
                latest[source] = exc        # view's row, not hiding the rest of the catalog
        mark = marks.get(view.name)
        current = store.registry.record(FeatureView.kind, view.name).version
        # a watermark of an earlier definition says nothing of this one (as materialize)
        materialized = None if mark is None or mark[0] != current else mark[1]
        value = latest[source]
        if isinstance(value, HeadwaterError):
            found[view.name] = Freshness(None, None, materialized, str(value))
        else:
            found[view.name] = Freshness(value, None if value is None else now - value,
                                         materialized)
    return found


def render(store: FeatureStore, query: Mapping[str, str]) -> str:
    """The catalog's body: the search form, then one view's detail (``view``) or every
    section filtered by ``q``."""
    text = query.get("q", "")
    form = (f'<form class=search method=get action="{PATH}">'
            f'<input type=search name=q value="{esc(text)}" '
            'placeholder="Search names, descriptions, owners, tags, features" '
            'aria-label="Search the catalog"> <button type=submit>Search</button></form>')
    name = query.get("view", "")
    if name:
        return form + _detail(store, name)
    return form + _overview(store, text.lower().split())


# -- search ------------------------------------------------------------------------------


def matches(terms: Sequence[str], texts: Iterable[str]) -> bool:
    """Whether every term (lower case) occurs in one of ``texts``, ignoring case."""
    hay = [t.lower() for t in texts if t]
    return all(any(term in h for h in hay) for term in terms)


def _tags(tags: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(tags.items())]


def entity_texts(entity: Entity) -> list[str]:
    """What search looks at in an entity (its join keys count as its feature names)."""
    return [entity.name, entity.description, entity.owner, *entity.join_keys,
            *_tags(entity.tags)]


def view_texts(view: FeatureView | OnDemandFeatureView) -> list[str]:
    """What search looks at in a feature view or on-demand view."""
    return [view.name, view.description, view.owner, *_tags(view.tags),
            *(t for f in view.features for t in (f.name, f.description))]


def service_texts(service: FeatureService, features: Mapping[str, Sequence[str]]) -> list[str]:
    """What search looks at in a feature service; ``features`` maps each view to its
    feature names (for projections that select a whole view)."""
    names = [n for p in service.features
             for n in (p.features if p.features is not None else features.get(p.view, ()))]
    return [service.name, service.description, service.owner, *_tags(service.tags), *names]


def source_name(source: Source) -> str:
    """How the catalog and lineage name a source: its name, else its path or query."""
    if isinstance(source, FileSource):
        return source.name or source.path
    if isinstance(source, SQLSource):
        return source.name or source.query
    return str(getattr(source, "name", "") or source.label())


def source_texts(source: Source) -> list[str]:
    """What search looks at in a source (a push or stream source's path is its batch
    source's)."""
    return [source_name(source), _location(source), getattr(source, "topic", ""),
            getattr(source, "description", "")]


# -- overview ----------------------------------------------------------------------------


def _overview(store: FeatureStore, terms: Sequence[str]) -> str:
    entities = [e for e in store.list_entities() if matches(terms, entity_texts(e))]
    views = store.list_feature_views()
    on_demand = store.list_on_demand_feature_views()
    names = {v.name: v.feature_names for v in views}
    names |= {v.name: v.feature_names for v in on_demand}
    services = [s for s in store.list_feature_services()
                if matches(terms, service_texts(s, names))]
    sources = [(s, users) for s, users in _sources(store, views).items()
               if matches(terms, source_texts(s))]
    views = [v for v in views if matches(terms, view_texts(v))]
    on_demand = [v for v in on_demand if matches(terms, view_texts(v))]
    fresh = freshness(store, views)
    note = ""
    if terms:
        total = len(entities) + len(sources) + len(views) + len(on_demand) + len(services)
        note = (f'<p class="muted search-result">{total} match(es) for '
                f"<q>{esc(' '.join(terms))}</q> · {link(PATH, 'show all')}</p>")
    empty = "no match" if terms else "nothing registered"
    return note + "".join((
        "<h2 id=entities>Entities</h2>",
        table(["Name", "Join keys", "Description", "Owner", "Tags"],
              ([esc(e.name), esc(", ".join(e.join_keys)), esc(e.description), esc(e.owner),
                _tag_cell(e.tags)] for e in entities), empty=empty),
        "<h2 id=sources>Sources</h2>",
        table(["Name", "Kind", "Path / query", "Timestamp field", "Description", "Used by"],
              ([esc(source_name(s)), esc(_kind(s)), esc(_location(s)),
                esc(s.timestamp_field), esc(getattr(s, "description", "")), users]
               for s, users in sources), empty=empty),
        "<h2 id=feature-views>Feature views</h2>",
        table(["Name", "Entities", "Source", "Features", "TTL", "Online", "Owner",
               "Description", "Tags", "Freshness"],
              (_view_row(v, fresh[v.name]) for v in views), empty=empty),
        "<h2 id=on-demand-views>On-demand views</h2>",
        table(["Name", "Inputs", "Features", "Mode", "Owner", "Description", "Tags"],
              ([link(PATH, v.name, view=v.name), _inputs(v), _feature_cell(v),
                esc(v.mode), esc(v.owner), esc(v.description), _tag_cell(v.tags)]
               for v in on_demand), empty=empty),
        "<h2 id=feature-services>Feature services</h2>",
        table(["Name", "Features", "Owner", "Description", "Tags"],
              ([esc(s.name), _selection(s.features), esc(s.owner), esc(s.description),
                _tag_cell(s.tags)] for s in services), empty=empty),
    ))


def _sources(store: FeatureStore, views: Sequence[FeatureView]) -> dict[Source, str]:
    """Each distinct source of the views and of the model specs' labels, with the links of
    what uses it."""
    users: dict[Source, list[str]] = {}
    for view in views:
        users.setdefault(view.source, []).append(link(PATH, view.name, view=view.name))
    for spec in store.list_models():
        users.setdefault(spec.label.source, []).append(
            f"{link('/models', spec.name, model=spec.name)} (labels)")
    return {source: ", ".join(found) for source, found in users.items()}


def _view_row(view: FeatureView, fresh: Freshness) -> list[str]:
    return [link(PATH, view.name, view=view.name),
            esc(", ".join(e.name for e in view.entities)),
            esc(source_name(view.source)), _feature_cell(view), duration(view.ttl),
            esc("yes" if view.online else "no"), esc(view.owner), esc(view.description),
            _tag_cell(view.tags), _fresh_cell(fresh)]


def age(value: timedelta) -> str:
    """A time span as the two largest units: ``1040 d 5 h``, ``3 h 12 min``, ``45 s``."""
    seconds = max(0, int(value.total_seconds()))
    days, hours, minutes = seconds // 86_400, seconds // 3_600 % 24, seconds // 60 % 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def _fresh_cells(fresh: Freshness) -> list[str]:
    """The latest event and its age, or what stands in for them."""
    if fresh.error:
        return [badge("unreadable", "bad") + f" <span class=muted>{esc(fresh.error)}</span>",
                "—"]
    if fresh.latest is None or fresh.age is None:
        return [badge("no events", "warn"), "—"]
    return [f"<span style='white-space: nowrap'>{when(fresh.latest)}</span>",
            esc(age(fresh.age))]


def _fresh_cell(fresh: Freshness) -> str:
    latest, ago = _fresh_cells(fresh)
    lines = [latest] if ago == "—" else [latest, f"{ago} ago"]
    if fresh.materialized is not None:
        lines.append(f"<span class=muted>materialized to {when(fresh.materialized)}</span>")
    return "<br>".join(lines)


# -- detail ------------------------------------------------------------------------------


def _detail(store: FeatureStore, name: str) -> str:
    on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
    if name in on_demand:
        return _on_demand_detail(store, on_demand[name])
    view = store.get_feature_view(name)  # NotFoundError names the known views
    fresh = freshness(store, [view])[name]
    record = store.registry.record(FeatureView.kind, name)
    source, (latest, ago) = view.source, _fresh_cells(fresh)
    facts = [
        ("Kind", "aggregated feature view" if view.is_aggregated else "feature view"),
        ("Version", esc(record.version)),
        ("Entities", esc(", ".join(f"{e.name} ({', '.join(e.join_keys)})"
                                   for e in view.entities))),
        ("Source", f"{esc(source_name(source))} <span class=muted>{esc(_kind(source))} · "
                   f"{esc(_location(source))} · timestamp {esc(source.timestamp_field)}"
                   "</span>"),
        ("TTL", duration(view.ttl)), ("Online", esc("yes" if view.online else "no")),
        ("Owner", esc(view.owner)), ("Description", esc(view.description)),
        ("Tags", _tag_cell(view.tags)), ("Latest event", latest), ("Age", ago),
        ("Materialized up to", when(fresh.materialized)),
        ("Used by", _used_by(store, name)),
    ]
    parts = [f"<h2>{esc(view.name)}</h2>", _facts(facts), "<h3>Features</h3>",
             _features_table(view.features)]
    if view.is_aggregated:
        parts += ["<h3>Aggregations</h3>", table(
            ["Feature", "Function", "Column", "Window", "Granularity", "Description"],
            ([esc(a.name), esc(a.function), esc(a.column), duration(a.window),
              duration(timedelta(microseconds=a.granularity_us)), esc(a.description)]
             for a in view.aggregations))]
    return "".join(parts)


def _on_demand_detail(store: FeatureStore, view: OnDemandFeatureView) -> str:
    record = store.registry.record(OnDemandFeatureView.kind, view.name)
    facts = [("Kind", "on-demand feature view"), ("Version", esc(record.version)),
             ("Inputs", _inputs(view)), ("Mode", esc(view.mode)), ("Owner", esc(view.owner)),
             ("Description", esc(view.description)), ("Tags", _tag_cell(view.tags)),
             ("Used by", _used_by(store, view.name))]
    return (f"<h2>{esc(view.name)}</h2>{_facts(facts)}<h3>Features</h3>"
            f"{_features_table(view.features)}<h3>Function</h3>"
            f"<pre>{esc(view.function_source)}</pre>")


def _used_by(store: FeatureStore, name: str) -> str:
    """Links to the on-demand views and feature services that read view ``name``."""
    found = [link(PATH, v.name, view=v.name) + " (on-demand view)"
             for v in store.list_on_demand_feature_views()
             if any(_input_view(s) == name for s in v.sources)]
    found += [link(PATH, s.name, q=s.name) + " (feature service)"
              for s in store.list_feature_services() if any(p.view == name for p in s.features)]
    return ", ".join(found) or "—"


def _facts(facts: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th scope=row>{esc(k)}</th><td>{v}</td></tr>" for k, v in facts)
    return f"<table class=facts><tbody>{rows}</tbody></table>"


def _features_table(features: Sequence[Field]) -> str:
    return table(["Feature", "Type", "Description"],
                 ([esc(f.name), esc(f.dtype), esc(f.description)] for f in features),
                 empty="schema not known yet")


# -- cells -------------------------------------------------------------------------------


def _kind(source: Source) -> str:
    if isinstance(source, FileSource):
        return f"file ({source.format})"
    if isinstance(source, SQLSource):
        return f"sql ({source.connection})"
    if isinstance(source, StreamSource):
        return f"stream ({source.topic})"
    if isinstance(source, PushSource):
        return "push"
    return type(source).__name__


def _location(source: Source) -> str:
    """A file source's path, a SQL source's query, or (push, stream) its batch source's."""
    if isinstance(source, FileSource):
        return source.path
    if isinstance(source, SQLSource):
        return source.query
    if isinstance(source, PushSource | StreamSource):
        return _location(source.batch_source)
    return ""


def _tag_cell(tags: Mapping[str, str]) -> str:
    return " ".join(badge(t) for t in _tags(tags))


def _feature_cell(view: FeatureView | OnDemandFeatureView) -> str:
    """Each feature with its type, and for an aggregated view its aggregation."""
    aggregations = {a.name: a for a in (
        view.aggregations if isinstance(view, FeatureView) else ())}
    lines = []
    for f in view.features:
        line = f"<code>{esc(f.name)}</code> <span class=muted>{esc(f.dtype)}</span>"
        agg = aggregations.get(f.name)
        if agg is not None:
            line += (f" = {esc(agg.function)}({esc(agg.column)}) over "
                     f"{duration(agg.window)}")
        lines.append(line)
    return "<br>".join(lines) or '<span class=muted>—</span>'


def _input_view(source: object) -> str | None:
    if isinstance(source, FeatureView):
        return source.name
    if isinstance(source, FeatureViewProjection):
        return source.view
    return None


def _inputs(view: OnDemandFeatureView) -> str:
    cells = []
    for source in view.sources:
        name = _input_view(source)
        if name is not None:
            picked = (source.features if isinstance(source, FeatureViewProjection) else None)
            cells.append(link(PATH, name, view=name)
                         + (f" [{esc(', '.join(picked))}]" if picked else ""))
        elif isinstance(source, RequestSource):
            cells.append(f"request <code>{esc(source.name)}</code> "
                         f"({esc(', '.join(f.name for f in source.schema))})")
    return "<br>".join(cells)


def _selection(projections: Sequence[FeatureViewProjection]) -> str:
    return "<br>".join(
        link(PATH, p.view, view=p.view) + ": "
        + (esc(", ".join(p.features)) if p.features is not None else "all features")
        for p in projections)


__all__ = ["PATH", "Freshness", "age", "freshness", "latest_event", "render", "source_name"]
