"""The stream consumer runtime behind ``headwater stream``.

A :class:`Consumer` reads batches from a :class:`~headwater.streaming.reader.StreamReader`
(Redis Streams or NATS JetStream, ``stream:`` in headwater.yaml) for the ``StreamSource``
feeds it serves, and commits each batch exactly once:

1. decode and validate the messages (:mod:`~headwater.streaming.messages`); malformed ones
   are counted and published to ``<topic>.dead`` with their reason;
2. drop the events whose id is already marked as fully applied (a redelivery after a crash
   between the online commit and the acknowledgement); a batch of first deliveries (a
   Redis ``>`` read, a JetStream first delivery) skips this look-up, since the online
   transaction checks the marks anyway and the files drop what it found applied;
3. write the batch's offline files under pending names
   (:mod:`~headwater.streaming.event_files`); within :meth:`Consumer.run` on a helper
   thread, while step 4 reads the entities' records and merges the events (the writing
   waits on the disk and in Arrow, mostly without the interpreter lock);
4. apply the events online to every view of the source, each view deduplicating by event id
   under its scope ``stream:<source>:<view>``; the last view's transaction also marks the
   batch's files, and nothing is written online before those files are durable;
5. rename the files visible, then acknowledge the messages.

A crash anywhere leaves the messages unacknowledged: they are delivered again and step 2 or
the per-view dedupe skips what was committed, while :meth:`Consumer.recover` (at start)
renames the pending files whose marker was committed and deletes this consumer's others.
Killing a consumer mid-batch and restarting it gives the online values and offline rows of
an uninterrupted run. Store errors stop the consumer (a supervisor restarts it); nothing is
acknowledged that was not committed.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING

from headwater.config import StreamSettings
from headwater.definitions import StreamSource
from headwater.errors import (
    ConfigError,
    DefinitionError,
    HeadwaterError,
    NotFoundError,
    StoreUnavailableError,
)
from headwater.offline.base import LATEST_TS
from headwater.streaming.collector import paced_collector
from headwater.streaming.event_files import (
    EventFile,
    Recovery,
    plan_files,
    publish,
    recover_pending,
    rewrite_pending,
)
from headwater.streaming.event_files import write_files as write_event_files
from headwater.streaming.ingest import (
    Feed,
    OnlineEffect,
    last_scope,
    prepare_online,
    resolve_feed,
    send_online,
    warm_up,
)
from headwater.streaming.messages import Decoded, Message, all_fresh, decode, message_ids
from headwater.streaming.parquet_append import PushFolder, push_folder
from headwater.streaming.push import source_schema
from headwater.streaming.reader import StreamReader

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pyarrow as pa

    from headwater.materialize.tiles import ViewBatch
    from headwater.online.base import OnlineStore
    from headwater.store import FeatureStore


@dataclass
class Counters:
    """What a consumer did so far."""

    events: int = 0
    batches: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Events applied per second since the start."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.events:,} events in {self.batches:,} batches, "
                f"{self.duplicates:,} duplicates skipped, {self.dead_lettered:,} "
                f"dead-lettered, {self.seconds:.1f} s ({self.rate:,.0f} events/s)")


def default_consumer_name() -> str:
    """The host name: stable across restarts, so a restarted consumer re-reads its own
    unacknowledged messages. Run several consumers on one host with distinct names."""
    return socket.gethostname().replace(" ", "_") or "headwater"


def stream_feeds(store: FeatureStore, sources: Sequence[str] = ()) -> list[Feed]:
    """The feeds of the named StreamSources, or of every StreamSource of a registered view;
    DefinitionError when a name is not a stream source or two share a topic."""
    if not sources:
        sources = sorted({v.source.name for v in store.list_feature_views()
                          if isinstance(v.source, StreamSource)})
        if not sources:
            raise DefinitionError("headwater stream", "sources", "no registered feature view "
                                  "reads a StreamSource", "define a view with source="
                                  "hw.StreamSource(...) and apply it")
    feeds: list[Feed] = []
    for name in sources:
        try:
            feed = resolve_feed(store, name)
        except NotFoundError:
            feed = None
        if feed is None or not isinstance(feed.views[0].source, StreamSource):
            raise DefinitionError("headwater stream", "--source", f"'{name}' is not a "
                                  "StreamSource of a registered view",
                                  "pass the name of a StreamSource (headwater list shows them)")
        if not feed.online_views:
            raise DefinitionError(feed.label, "online", "none of its views is served online",
                                  "set online=True on a view of the source and apply")
        feeds.append(feed)
    topics = [f.topic for f in feeds]
    twice = sorted({t for t in topics if topics.count(t) > 1})
    if twice:
        raise DefinitionError("headwater stream", "sources", f"topics {twice} feed several "
                              "sources", "give each StreamSource its own topic")
    return feeds


def open_reader(settings: StreamSettings, topics: Sequence[str],
                consumer: str) -> StreamReader:
    """The reader for ``stream: type:`` (imported only now)."""
    if settings.type == "nats":
        try:
            from headwater.streaming.nats import NatsStreamReader
        except ImportError as exc:
            raise ConfigError("headwater.yaml sets 'stream: type: nats' but nats-py is not "
                              "installed. Fix: pip install 'headwater[nats]'") from exc
        return NatsStreamReader(settings.url, topics, group=settings.group,
                                consumer=consumer, claim_timeout_s=settings.claim_timeout_s)
    try:
        from headwater.streaming.redis_streams import RedisStreamReader
    except ImportError as exc:
        raise ConfigError("headwater.yaml sets 'stream: type: redis' but redis is not "
                          "installed. Fix: pip install 'headwater[redis]'") from exc
    return RedisStreamReader(settings.url, topics, group=settings.group, consumer=consumer,
                             claim_timeout_s=settings.claim_timeout_s)


def _committed(online: OnlineStore, scopes: list[str], markers: list[str]) -> set[str]:
    """The ``markers`` marked under any of ``scopes``."""
    return set().union(*(online.markers_present(scope, markers) for scope in scopes))


class Consumer:
    """Consumes ``feeds`` from ``reader`` as ``consumer`` (module docstring)."""

    def __init__(self, store: FeatureStore, feeds: Sequence[Feed], reader: StreamReader, *,
                 consumer: str, batch_size: int = 1000, block_ms: int = 1000,
                 claim_timeout_s: float | None = None) -> None:
        self.store = store
        self._claim_timeout_s = (store.settings.stream.claim_timeout_s
                                 if claim_timeout_s is None else claim_timeout_s)
        self.reader = reader
        self.consumer = consumer
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.counters = Counters()
        self._asked = batch_size
        self._file_writer: ThreadPoolExecutor | None = None
        # the latest push time (ms) of the files planned for a batch applied here: a batch
        # planned ahead must come after it, or __hw_seq would not follow the commit order
        self._planned_ms = 0
        self._feeds = {f.topic: f for f in feeds}
        self._folders: dict[str, PushFolder] = {
            f.name: push_folder(f.union, store.repo_path, partitioned=True) for f in feeds}
        # Resolved now, not on the first batch: reading the sources' schemas starts the
        # offline engine (and imports it), which would delay the first events by a second.
        self._schemas: dict[str, pa.Schema | None] = {
            f.name: source_schema(store, f.union) for f in feeds}
        warm_up(store)

    def recover(self, *, own: bool = True) -> Recovery:
        """Finish the pending files a crash left (see :mod:`~headwater.streaming.event_files`):
        this consumer's (unless ``own`` is False: :meth:`run` sweeps with it, its own being
        in flight then) and those other consumers left unchanged for the claim timeout."""
        published = deleted = 0
        online = self.store.online
        for feed in self._feeds.values():
            folder = self._folders[feed.name].folder
            done = recover_pending(folder, self.consumer, partial(
                _committed, online, [feed.scope(v) for v in feed.online_views]),
                others_after=self._claim_timeout_s, own=own)
            published += done.published
            deleted += done.deleted
        return Recovery(published, deleted)

    def run(self, stop: threading.Event | None = None, *, max_events: int | None = None,
            idle_exit: float | None = None,
            on_batch: Callable[[Counters], None] | None = None) -> Counters:
        """Consume until ``stop`` is set, ``max_events`` messages were handled or no message
        came for ``idle_exit`` seconds; the batch in progress is always finished.

        While catching up (a read returned a full batch), a reader that allows it now
        (``reads_ahead``) reads and decodes the next batch on a helper thread while this one
        is applied: this one mostly waits on the online store meanwhile (its server does the
        work of the commit), so the two threads take turns rather than use two cores. A
        batch read ahead is applied like any other, after the one before it, and is finished
        even when ``stop`` is set meanwhile. The acknowledgement of a batch whose successor
        is being read ahead is sent by the helper thread too, after that read (it follows
        the batch's commit either way); a read on this thread waits for it first.

        The garbage collector is paced meanwhile (:mod:`~headwater.streaming.collector`)."""
        with paced_collector():
            return self._run(stop or threading.Event(), max_events, idle_exit, on_batch)

    def _run(self, stop: threading.Event, max_events: int | None, idle_exit: float | None,
             on_batch: Callable[[Counters], None] | None) -> Counters:
        last_message = time.monotonic()
        sweep_at = last_message + self._claim_timeout_s
        handled = 0
        helper = (ThreadPoolExecutor(1, "headwater-read-ahead")
                  if hasattr(self.reader, "reads_ahead") else None)
        ahead: Future[tuple[list[Message], dict[str, Ahead]]] | None = None
        acking: Future[None] | None = None
        online = self.store.online
        # the batch sent and not confirmed yet: its finishing step and its messages
        flight: list[tuple[Callable[[], None], list[Message]]] = []
        self._file_writer = ThreadPoolExecutor(1, "headwater-event-files")
        try:
            while True:
                ready: dict[str, Ahead] = {}
                if ahead is not None:
                    (messages, ready), asked = ahead.result(), self._asked
                    ahead = None
                    if acking is not None and acking.done():
                        acking.result()  # raises what the acknowledgement raised
                        acking = None
                else:
                    if acking is not None:
                        acking.result()
                        acking = None
                    if stop.is_set() or (max_events is not None and handled >= max_events):
                        break
                    asked = self._count(max_events, handled)
                    wait = self.block_ms
                    if idle_exit is not None:
                        left = idle_exit - (time.monotonic() - last_message)
                        if left <= 0:
                            break
                        wait = max(1, min(wait, int(left * 1000)))
                    messages = self.reader.read(asked, wait)
                if time.monotonic() >= sweep_at:  # the committed files of consumers that died
                    self.recover(own=False)
                    sweep_at = time.monotonic() + self._claim_timeout_s
                if not messages:
                    continue
                handled += len(messages)
                if (helper is not None and len(messages) >= asked and not stop.is_set()
                        and (max_events is None or handled < max_events)
                        and getattr(self.reader, "reads_ahead", False)):
                    self._asked = self._count(max_events, handled)
                    ahead = helper.submit(self._read_ahead, self._asked, self.block_ms)
                before = online.pending()
                finish = self._send_batch(messages, ready, defer=ahead is not None)
                # Confirm the batch before this one (its commit ran on the server while
                # this one was merged), or this one too when no batch is read ahead.
                online.settle(keep=online.pending() - before if ahead is not None else 0)
                for done, batch in flight:
                    done()
                    acking = self._ack(helper, acking, batch)
                flight = [(finish, messages)]
                if ahead is None:
                    finish()
                    acking = self._ack(helper, acking, messages)
                    flight = []
                last_message = time.monotonic()  # idle time counts from the end of the work
                if on_batch is not None:
                    on_batch(self.counters)
            online.settle()
            for done, batch in flight:
                done()
                acking = self._ack(helper, acking, batch)
            if acking is not None:
                acking.result()
        finally:
            if helper is not None:
                helper.shutdown(wait=True)
            self._file_writer.shutdown(wait=True)
            self._file_writer = None
        return self.counters

    def _ack(self, helper: ThreadPoolExecutor | None, acking: Future[None] | None,
             messages: list[Message]) -> Future[None] | None:
        """Acknowledge ``messages`` (committed): on the helper thread when there is one,
        after the acknowledgement before; here otherwise."""
        if helper is None:
            self.reader.ack(messages)
            return acking
        if acking is not None:
            acking.result()
        return helper.submit(self.reader.ack, messages)

    def _count(self, max_events: int | None, handled: int) -> int:
        return self.batch_size if max_events is None else min(self.batch_size,
                                                              max_events - handled)

    def _read_ahead(self, count: int, wait_ms: int) -> tuple[list[Message], dict[str, Ahead]]:
        """Read the next batch and make it ready, on the read-ahead thread while the batch
        before it is applied (:class:`Ahead`: none of it depends on anything online), and
        prefetch the records its updates will read that the online store does not hold
        (new entities, mostly), so that its update reads nothing on this thread. A feed
        whose file schema is not known yet (no file so far: the batch before may set it) is
        decoded later, by :meth:`process`."""
        messages = self.reader.read(count, wait_ms)
        ready: dict[str, Ahead] = {}
        for topic, batch in _by_topic(messages).items():
            feed = self._feeds[topic]
            schema = self._schemas[feed.name]
            if schema is not None:
                made = ready[topic] = _ahead(feed, decode(feed, batch, schema, offline=True))
                for view, prepared in (made.prepared or {}).items():
                    # the records the entities' update will read, read here and now
                    self.store.online.prefetch(view, prepared.whole.keys)
        return messages, ready

    def process(self, messages: Sequence[Message],
                ready: Mapping[str, Ahead] | None = None, *, ack: bool = True) -> None:
        """Commit one batch exactly once, then acknowledge it (module docstring; with
        ``ack`` False the caller acknowledges it). ``ready``: per topic, what
        :meth:`_read_ahead` made of the batch's messages of that topic."""
        self._send_batch(messages, ready)()
        if ack:
            self.reader.ack(messages)

    def _send_batch(self, messages: Sequence[Message], ready: Mapping[str, Ahead] | None,
                    *, defer: bool = False) -> Callable[[], None]:
        """Send one batch's commits and return the step that finishes it (publish the
        files, count); with ``defer`` the online updates are deferred, and the step runs
        only once the online store's ``settle`` confirmed them."""
        finishing = [self._commit(self._feeds[topic], batch, (ready or {}).get(topic),
                                  defer=defer)
                     for topic, batch in _by_topic(messages).items()]

        def finish() -> None:
            for step in finishing:
                step()
            self.counters.batches += 1

        return finish

    def _commit(self, feed: Feed, messages: list[Message], ahead: Ahead | None = None,
                *, defer: bool = False) -> Callable[[], None]:
        import pyarrow as pa

        folder = self._folders[feed.name]
        decoded = (ahead.decoded if ahead is not None
                   else decode(feed, messages, self._schemas[feed.name], offline=True))
        if decoded.refused:
            self.reader.dead_letter(decoded.refused)
            self.counters.dead_lettered += len(decoded.refused)
        if decoded.events is None or decoded.offline is None:
            return _nothing
        ids = message_ids(decoded.messages)
        # a batch of first deliveries cannot hold an applied event: skip the round trip (the
        # update checks the marks again in its transaction, and its files drop any it finds)
        fresh = all_fresh(decoded.messages)
        marked = set() if fresh else self.store.online.markers_present(last_scope(feed), ids)
        events, offline = decoded.events, decoded.offline
        keep = first_unmarked(ids, marked)
        if not all(keep):
            self.counters.duplicates += len(ids) - sum(keep)
            if not any(keep):
                return _nothing
            mask = pa.array(keep)
            events, offline = events.filter(mask), offline.filter(mask)
            ids = [i for i, kept in zip(ids, keep, strict=True) if kept]
            ahead = None  # made of all the messages
        if (ahead is not None and ahead.planned is not None
                and min(f.ms for f in ahead.planned[0]) > self._planned_ms):
            (files, seq), prepared = ahead.planned, ahead.prepared
        else:  # planned here; also when the batch before was planned after this one's plan
            (files, seq), prepared = plan_files(events.column(LATEST_TS)), None
        self._planned_ms = max(self._planned_ms, *(f.ms for f in files))
        batch_files = _BatchFiles(offline, files, ids)
        if self._file_writer is None:
            batch_files.paths = write_event_files(folder, offline, files, pending=self.consumer)
            sent = send_online(self.store, feed, events, seq, ids=ids,
                               markers=[f.marker for f in files], prepared=prepared,
                               likely_unmarked=fresh, defer=defer, on_taken=batch_files.drop)
        else:
            writing = self._file_writer.submit(write_event_files, folder, offline, files,
                                               pending=self.consumer)

            def written() -> None:
                batch_files.paths = writing.result()

            try:
                sent = send_online(self.store, feed, events, seq, ids=ids,
                                   markers=[f.marker for f in files], before_commit=written,
                                   prepared=prepared, likely_unmarked=fresh, defer=defer,
                                   on_taken=batch_files.drop)
            finally:
                wait([writing])  # a failed batch leaves no file being written behind it
            if batch_files.paths is None:
                batch_files.paths = writing.result()
        if self._schemas[feed.name] is None:
            self._schemas[feed.name] = offline.schema
        return partial(self._finish, batch_files, sent=sent)

    def _finish(self, batch_files: _BatchFiles, *, sent: Callable[[], OnlineEffect]) -> None:
        """Once a batch's online commit is confirmed: count it and make its files visible
        (they hold only the rows of events no other consumer committed first:
        :meth:`_BatchFiles.drop` ran before the commit)."""
        effect = sent()
        self.counters.events += effect.applied
        self.counters.duplicates += effect.duplicates
        publish(batch_files.paths or [])


class _BatchFiles:
    """A batch's pending files (``paths``, set once written) and what they were written
    from, so that :meth:`drop` can leave events out of them before the batch's commit."""

    def __init__(self, offline: pa.Table, files: list[EventFile], ids: list[str]) -> None:
        self.offline, self.files, self.ids = offline, files, ids
        self.paths: list[Path] | None = None
        self._dropped: frozenset[str] = frozenset()

    def drop(self, taken: frozenset[str]) -> None:
        """Rewrite the pending files without the events ``taken`` (another consumer
        committed them after this one checked: their rows are in its files). Called from
        inside the commit's transaction, before the files' markers are committed, so a
        consumer that dies after its commit leaves files that match it. The commit may run
        again with more ids taken: each run leaves out the new ones too. Marks never go
        away within their retention, so fewer ids taken than before means a mark was lost:
        that raises, nothing is committed and the batch comes again."""
        import numpy as np

        if taken == self._dropped:
            return
        if self.paths is None:
            raise HeadwaterError("a batch's offline files were not written before its commit "
                                 "(a bug: please report it)")
        if not self._dropped <= taken:
            raise StoreUnavailableError(
                "the online store no longer marks events this consumer saw marked moments "
                "ago (a lost write: eviction or a failover?); the batch is not committed "
                "and will be delivered again. Fix: keep the online store from evicting keys "
                "(maxmemory-policy noeviction)")
        ours = np.fromiter((i not in taken for i in self.ids), np.bool_, len(self.ids))
        kept = [dataclasses.replace(f, rows=f.rows[ours[f.rows]]) for f in self.files]
        self.paths = rewrite_pending(self.offline, kept, self.paths)
        self.files = [f for f in kept if len(f.rows)]
        self._dropped = taken


@dataclass(frozen=True)
class Ahead:
    """A batch's messages of one feed made ready ahead of their turn: ``decoded``; for a
    batch of first deliveries (nothing of it can be applied already) also ``planned``, the
    offline files and sequence numbers (:func:`~headwater.streaming.event_files.
    plan_files`), and ``prepared``, the partial states of each aggregated view
    (:func:`~headwater.streaming.ingest.prepare_online`). When the batch turns out to hold
    an applied or repeated event, its turn recomputes them for the events it keeps."""

    decoded: Decoded
    planned: tuple[list[EventFile], np.ndarray] | None = None
    prepared: dict[str, ViewBatch] | None = None


def _ahead(feed: Feed, decoded: Decoded) -> Ahead:
    events = decoded.events
    if events is None or not all_fresh(decoded.messages):
        return Ahead(decoded)
    files, seq = plan_files(events.column(LATEST_TS))
    ids = message_ids(decoded.messages)
    return Ahead(decoded, (files, seq), prepare_online(feed, events, seq, ids))


def _nothing() -> None:
    """The finishing step of a batch that sent nothing."""


_TOPIC = attrgetter("topic")


def _by_topic(messages: Sequence[Message]) -> dict[str, list[Message]]:
    """The messages of each topic, in stream order."""
    if messages and all(map(messages[0].topic.__eq__, map(_TOPIC, messages))):
        return {messages[0].topic: list(messages)}  # the usual: one topic
    by_topic: dict[str, list[Message]] = {}
    for message in messages:
        by_topic.setdefault(message.topic, []).append(message)
    return by_topic


def first_unmarked(ids: Sequence[str], marked: set[str]) -> list[bool]:
    """Which messages to apply: the first copy of each id not marked as applied. A message
    can come twice in one batch when its redelivery timeout passed while it waited; its
    first copy stands for both, offline as online."""
    if not marked and len(set(ids)) == len(ids):  # the usual: all new, none repeated
        return [True] * len(ids)
    taken = set(marked)
    keep = []
    for ident in ids:
        keep.append(ident not in taken)
        taken.add(ident)
    return keep
