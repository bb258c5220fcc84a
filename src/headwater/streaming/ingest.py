"""Ingest: events of a push or stream source -> the offline copy and every view online.

A *feed* is what one name pushes into: a ``PushSource`` or ``StreamSource`` name feeds every
registered view whose source has that name (one source may feed views keyed by different
entities); an aggregated view's own name feeds that view alone. The events are

1. validated once against the union of the views' needs (every view's join keys, the time
   columns, the aggregated columns of aggregated views and the features of plain views), by
   the rules of :mod:`~headwater.streaming.push_rows`; anything wrong is a DataError naming
   the column, before anything is written;
2. given an ``__hw_seq`` consistent with the offline ingestion order and appended once to
   the batch source, as Parquet partitioned by event date
   (:mod:`~headwater.streaming.event_files`);
3. applied online to every view: plain views by the latest-value write that materialization
   uses (compare-and-set, so a replay changes nothing), aggregated views by
   :func:`headwater.materialize.tiles.apply_events`, which merges them into the entities' tile
   records and, given event ids, marks them in the same transaction (exactly-once).

Plain views are written first and aggregated views in name order, so a stream consumer can
commit its batch's file markers with the last one (:mod:`~headwater.streaming.consumer`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.definitions import Entity, FeatureView, Field, PushSource, Source, StreamSource
from headwater.errors import DefinitionError
from headwater.offline.base import EVENT_SEQ, LATEST_CREATED, LATEST_TS
from headwater.streaming.event_files import plan_files, plan_seq, write_files
from headwater.streaming.parquet_append import (
    other_columns,
    push_folder,
    source_table,
)
from headwater.streaming.push import (
    PushResult,
    check_keys,
    kept_offline,
    source_schema,
    write_online,
)
from headwater.streaming.push_rows import prepare_rows

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from headwater.materialize.tiles import ApplyResult, ViewBatch
    from headwater.online.base import OnlineStore
    from headwater.store import FeatureStore


@dataclass(frozen=True)
class Feed:
    """The views one push or stream source name feeds, and what their events must hold.

    ``views``: plain views (by name), then aggregated views (by name). ``union`` is a
    feature view standing for all of them: the entities of every view, the batch source,
    and as schema the union of the columns the views read (validation and the offline file
    layout use it)."""

    name: str
    label: str
    source: Source
    views: tuple[FeatureView, ...]
    union: FeatureView
    topic: str

    @property
    def aggregated(self) -> tuple[FeatureView, ...]:
        return tuple(v for v in self.views if v.is_aggregated)

    @property
    def online_views(self) -> tuple[FeatureView, ...]:
        return tuple(v for v in self.views if v.online)

    def scope(self, view: FeatureView) -> str:
        """The marker scope of a view's event ids: ``stream:<feed>:<view>``."""
        return f"stream:{self.name}:{view.name}"

    @property
    def owner(self) -> str:
        """How errors name a push to this feed."""
        return f"push to {self.label}"


def resolve_feed(store: FeatureStore, name: str) -> Feed | None:
    """The feed of ``name``, or None when ``name`` is a plain feature view (a push of its
    latest rows). Cached until the registry changes. NotFoundError when nothing has that
    name; DefinitionError when a plain view and a source share it."""
    return store.registry.derived(("feed", name), lambda: _resolve(store, name))


def _resolve(store: FeatureStore, name: str) -> Feed | None:
    views = store.list_feature_views()
    sources = [(v, v.source) for v in views
               if isinstance(v.source, PushSource | StreamSource) and v.source.name == name]
    fed = [v for v, _ in sources]
    named = next((v for v in views if v.name == name), None)
    if sources:
        if named is not None and named not in fed:
            raise DefinitionError(
                f"FeatureView '{name}'", "name", f"'{name}' also names the source of "
                f"{[v.name for v in fed]}, so a push to it is ambiguous",
                "rename the feature view or the source, and apply")
        source = sources[0][1]
        batches = {v.batch_source for v in fed}
        if len(batches) > 1:
            raise DefinitionError(
                source.label(), "batch_source", f"the views {[v.name for v in fed]} give "
                "the source different batch sources", "use one source object for them all")
        topic = source.topic if isinstance(source, StreamSource) else source.name
        return _feed(name, source.label(), fed, topic)
    if named is None:
        store.get_feature_view(name)  # NotFoundError with the known names
        return None
    if named.is_aggregated:
        return _feed(name, f"FeatureView '{name}'", [named], name)
    return None


def _feed(name: str, label: str, views: list[FeatureView], topic: str) -> Feed:
    ordered = (sorted((v for v in views if not v.is_aggregated), key=lambda v: v.name)
               + sorted((v for v in views if v.is_aggregated), key=lambda v: v.name))
    return Feed(name, label, ordered[0].batch_source, tuple(ordered),
                union_view(name, label, ordered), topic)


def union_view(name: str, label: str, views: Sequence[FeatureView]) -> FeatureView:
    """A feature view reading everything ``views`` read (see :class:`Feed`)."""
    entities: dict[str, Entity] = {}
    keys: dict[str, Field] = {}
    columns: dict[str, Field] = {}
    for view in views:
        for entity in view.entities:
            entities.setdefault(entity.name, entity)
        for key in view.entity_columns or ():
            keys.setdefault(key.name, key)
        for column in (view.schema or ()) if view.is_aggregated else view.features:
            seen = columns.setdefault(column.name, column)
            if seen.dtype != column.dtype:
                raise DefinitionError(
                    label, "views", f"column '{column.name}' is {seen.dtype!r} in one view "
                    f"and {column.dtype!r} in '{view.name}'",
                    "declare the column with one dtype in every view of the source")
    return FeatureView(name=name, entities=tuple(entities.values()),
                       source=views[0].batch_source, schema=tuple(columns.values()) or None,
                       online=False, entity_columns=tuple(keys.values()) or None)


def prepare_events(feed: Feed, rows: Any, schema: pa.Schema | None) -> pa.Table:
    """Validated events (keys, ``__hw_ts``, ``__hw_created``, the union's columns, then any
    other column of the source's files, ``schema``); DataError naming the fix."""
    events = prepare_rows(feed.union, rows, other_columns(feed.union, schema),
                          owner=feed.owner)
    check_keys(feed.union, events, feed.owner)
    return events


def view_events(view: FeatureView, events: pa.Table, seq: np.ndarray) -> pa.Table:
    """The events as :func:`~headwater.materialize.tiles.apply_events` takes them for an
    aggregated view, or as the latest-value write takes them for a plain one."""
    import pyarrow as pa

    names = [*view.join_keys, LATEST_TS, LATEST_CREATED]
    if view.is_aggregated:
        columns = [events.column(n) for n in names]
        columns.append(pa.array(seq, pa.int64()))
        names.append(EVENT_SEQ)
        fields = [f.name for f in view.schema or ()]
    else:
        columns = [events.column(n) for n in names]
        fields = list(view.feature_names)
    columns += [events.column(f) for f in fields]
    return pa.Table.from_arrays(columns, names=[*names, *fields])


@dataclass(frozen=True)
class OnlineEffect:
    """What applying a batch online did: ``stored`` latest-value records kept (plain
    views); ``applied`` and ``duplicates``: events of the last view, the one whose marks
    say an event is fully applied (those another consumer committed first count as
    duplicates); ``taken``
    the ids of the batch that were marked when the last view's transaction ran: another
    consumer committed them after this one checked (it took them over)."""

    stored: int = 0
    applied: int = 0
    duplicates: int = 0
    taken: frozenset[str] = frozenset()


def apply_online(store: FeatureStore, feed: Feed, events: pa.Table, seq: np.ndarray, *,
                 ids: Sequence[str] | None = None, markers: Sequence[str] = (),
                 online: OnlineStore | None = None,
                 before_commit: Callable[[], object] | None = None,
                 prepared: Mapping[str, ViewBatch] | None = None,
                 likely_unmarked: bool = False) -> OnlineEffect:
    """Apply prepared events to every online view of the feed (module docstring).

    With ``ids`` (one per event) each aggregated view skips the ids it has already marked
    under its scope; the ids and ``markers`` are committed with the last view's events (for
    a plain last view, in a transaction of their own after its idempotent write).

    ``before_commit`` is called (and may raise, which writes nothing) before the first
    write of anything online: before a plain view's write, else inside the first
    aggregated view's transaction after its records were read and merged. The stream
    consumer waits there for the batch's offline files, written meanwhile on another
    thread, which must be durable before their markers are committed. ``prepared``: the
    :func:`prepare_online` of these events, seq and ids, when computed already.
    ``likely_unmarked``: none of the ids can be marked yet (first deliveries), a hint for
    the online store (:meth:`~headwater.online.base.OnlineStore.update`)."""
    return send_online(store, feed, events, seq, ids=ids, markers=markers, online=online,
                       before_commit=before_commit, prepared=prepared,
                       likely_unmarked=likely_unmarked)()


def send_online(store: FeatureStore, feed: Feed, events: pa.Table, seq: np.ndarray, *,
                ids: Sequence[str] | None = None, markers: Sequence[str] = (),
                online: OnlineStore | None = None,
                before_commit: Callable[[], object] | None = None,
                prepared: Mapping[str, ViewBatch] | None = None,
                likely_unmarked: bool = False,
                defer: bool = False,
                on_taken: Callable[[frozenset[str]], object] | None = None
                ) -> Callable[[], OnlineEffect]:
    """:func:`apply_online`, returning the function that gives its effect. With ``defer``
    the last view's update is deferred (:meth:`~headwater.online.base.OnlineStore.update`):
    call the function only after the online store's ``settle`` confirmed it. Earlier views
    commit before it is sent: a deferred commit of theirs that failed its checks would run
    again only in ``settle``, and a consumer dying before then would leave their events
    unapplied while the last view's marks say the events are applied.
    ``on_taken`` is called with the ids found marked each time the last view's transaction
    is about to commit the ids and ``markers`` (it may run again): the stream consumer
    drops those events from its pending files there, before their markers are committed."""
    target = online if online is not None else store.online
    pending = before_commit

    def wait() -> None:
        nonlocal pending
        if pending is not None:
            ready, pending = pending, None
            ready()

    stored = 0
    taken: set[str] = set()  # a plain last view's ids found marked
    results: list[Callable[[], ApplyResult]] = []
    views = feed.online_views
    last = views[-1]
    for view in views:
        table = view_events(view, events, seq)
        generation = store.record_generation(view.name)
        if not view.is_aggregated:
            wait()
            stored += write_online(target, view, generation, table)
            if view is last and ids is not None:
                def note_marked(marked: set[str], current: dict[bytes, bytes | None]
                                ) -> dict[bytes, bytes]:
                    taken.update(i for i in ids or () if i in marked)
                    if on_taken is not None:
                        on_taken(frozenset(taken))
                    return {}

                target.update(view.name, (), note_marked, scope=feed.scope(view), ids=ids,
                              markers=markers)
            continue
        from headwater.materialize.tiles import send_events

        results.append(send_events(
            target, view, generation, table, scope=None if ids is None else feed.scope(view),
            ids=ids, markers=markers if view is last else (), before_commit=wait,
            batch=(prepared or {}).get(view.name), likely_unmarked=likely_unmarked,
            defer=defer and view is last, on_marked=on_taken if view is last else None))

    def effect() -> OnlineEffect:
        if not last.is_aggregated:
            return OnlineEffect(stored, events.num_rows - len(taken), len(taken),
                                frozenset(taken))
        result = results[-1]()  # the last view's
        return OnlineEffect(stored, result.applied, result.duplicates, result.marked)

    return effect


def prepare_online(feed: Feed, events: pa.Table, seq: np.ndarray,
                   ids: Sequence[str] | None) -> dict[str, ViewBatch]:
    """Per aggregated online view of the feed, the :func:`~headwater.materialize.tiles.
    view_batch` that :func:`apply_online` computes of these events: nothing online is read,
    so a stream consumer computes it ahead (while the batch before is applied)."""
    from headwater.materialize.tiles import view_batch

    return {view.name: view_batch(view, view_events(view, events, seq), ids)
            for view in feed.online_views if view.is_aggregated}


def last_scope(feed: Feed) -> str:
    """The scope whose marks say an event (or a file marker) is fully applied: the last
    online view's, committed last (:func:`apply_online`)."""
    return feed.scope(feed.online_views[-1])


def push_events(store: FeatureStore, feed: Feed, rows: Any, to: str) -> PushResult:
    """``store.push`` to a push or stream source (or an aggregated view): validate, append
    offline (partitioned by date) unless ``to="online"``, then apply online unless
    ``to="offline"``. Offline is written first, so a failed online write loses nothing."""
    if to != "offline" and not feed.online_views:
        raise DefinitionError(feed.label, "online", "none of its views is served online",
                              "push with to='offline', or set online=True and apply")
    folder = None if to == "online" else push_folder(feed.union, store.repo_path,
                                                     partitioned=True)
    if isinstance(rows, list | tuple) and not rows:
        return PushResult(feed.name, to, 0)
    schema = None if folder is None else source_schema(store, feed.union)
    events = prepare_events(feed, rows, schema)
    if events.num_rows == 0:
        return PushResult(feed.name, to, 0)
    paths = []
    if folder is not None:
        files, seq = plan_files(events.column(LATEST_TS))
        paths = write_files(folder, source_table(feed.union, events, schema), files)
    else:
        seq = plan_seq(events.num_rows)
    effect = OnlineEffect()
    if to != "offline":
        try:
            effect = apply_online(store, feed, events, seq)
        except Exception as exc:
            # The events are durable offline whatever the online store raised; the caller
            # must learn that to recover, so every failure is re-raised saying so.
            if not paths:
                raise
            raise kept_offline(exc, events, ", ".join(map(str, paths))) from exc
    applied = effect.applied if feed.online_views[-1].is_aggregated else 0
    return PushResult(feed.name, to, events.num_rows, effect.stored + applied,
                      paths[0] if paths else None, tuple(paths))


__all__ = ["Feed", "OnlineEffect", "apply_online", "prepare_events", "prepare_online",
           "push_events", "resolve_feed", "union_view", "view_events"]


def warm_up(store: FeatureStore) -> None:
    """Load now what ingesting events uses, so the first events are not delayed by one-time
    work: the offline engine (source schemas), the tile modules, and pyarrow's first
    conversion to numpy, which imports pandas (together about a second)."""
    import msgpack  # noqa: F401
    import pyarrow as pa
    import pyarrow.compute
    import pyarrow.json
    import pyarrow.parquet

    import headwater.aggregation.grouped
    import headwater.aggregation.merge_batch
    import headwater.materialize.tiles  # noqa: F401

    pa.array([0]).to_numpy()
    _ = store.offline
