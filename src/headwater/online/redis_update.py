"""The optimistic, exactly-once ``update`` of the Redis online stores, in one implementation.

Each record ``update`` writes gets a *version*: a random token, new at every write, so equal
versions mean equal records. The store keeps the records it last read or wrote with their
versions (:mod:`~headwater.online.record_cache`). An update reads (one script, one reply for
all entities) each entity's version and, unless it is the version the store holds, the
record, and which ids are marked (``ZMSCORE``); runs ``modify`` in Python; then commits with
one script, atomic as every script is: it checks that each version read is still the stored
one (for a record without a version, one a plain ``write`` stored, the record byte for byte;
absent still absent) and that no id found unmarked was marked meanwhile, and only then
stores each changed record with a new version, prunes the markers past the retention
(``ZREMRANGEBYSCORE``) and marks the ids (``ZADD NX``). A failed check writes nothing: the
update reads again and retries (64 attempts at most, with a short random backoff) before a
StoreUnavailableError. Deferred commits (``defer=True``) are sent without waiting for their
reply and confirmed by ``settle``; one whose checks failed runs again then.

Where records, versions and markers live is the store's
:class:`~headwater.online.redis_scripts.Layout`: the single server keeps them in the entity
hashes (``ENTITY_LAYOUT``), the cluster in hashes of the view's own slot (``VIEW_LAYOUT``),
so that one update's keys are always in one slot. The store
classes (:mod:`~headwater.online.redis`, :mod:`~headwater.online.redis_cluster`) subclass
:class:`OptimisticUpdates` and say which node an update goes to.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import itemgetter
from typing import Any, cast

from redis.exceptions import AskError, ResponseError

from headwater.errors import StoreUnavailableError
from headwater.online import check_modified, check_update
from headwater.online.base import Modify
from headwater.online.record_cache import Held, RecordCache
from headwater.online.redis_node import UNAVAILABLE, RedisNode, pack, pack_bytes
from headwater.online.redis_scripts import Layout

UPDATE_ATTEMPTS = 64
_BACKOFF_S = 0.001
_BACKOFF_MAX_S = 0.05

@dataclass(frozen=True)
class UpdateCall:
    """One call of ``update``, kept to be run again: the layout's keys (``script_keys``),
    read prefix and commit tail, the markers key, and the node that holds them all."""

    view: str
    keys: list[bytes]
    modify: Modify
    scope: str | None
    checked: list[str]  # the ids, then the markers, each once
    likely_unmarked: bool
    field: bytes
    vfield: bytes
    script_keys: list[bytes]
    read_prefix: list[bytes]
    tail: list[bytes]
    marks_key: bytes
    node: RedisNode
    action: str


@dataclass(frozen=True)
class _Read:
    """What an update read: per key the stored version and record (``stored``), the record
    ``modify`` is given (``current``: a plain record the store merged in, else ``stored``),
    and the marked ids."""

    versions: list[bytes | None]
    stored: list[bytes | None]
    current: list[bytes | None]
    marked: set[str]


@dataclass(frozen=True)
class Commit:
    """An update's commit: what it read, the record per key (b"" to leave it), the prefix
    of the new versions, how many records ``modify`` returned, and the packed call."""

    update: UpdateCall
    read: _Read
    new: list[bytes]
    prefix: bytes
    stored: int
    command: bytes


@dataclass(frozen=True)
class _Pending:
    """A deferred commit sent on ``conn`` of ``node`` whose reply is not read yet."""

    commit: Commit
    conn: Any
    node: RedisNode


class OptimisticUpdates:
    """``update``, ``settle`` and ``pending`` for a Redis store (see the module docstring).

    A subclass sets ``_layout``, ``_cache``, ``_local`` (a ``threading.local``) and
    ``_retention_us``, and implements :meth:`_update_call` (the keys and node of an update),
    :meth:`_unavailable` and :meth:`_refused`; it may override :meth:`_read_plain` and the
    hooks :meth:`_before_commit` and :meth:`_after_commit`."""

    _layout: Layout
    _cache: RecordCache
    _local: threading.local
    _retention_us: int
    _safe_url: str

    def _update_call(self, view: str, keys: list[bytes], modify: Modify, *,
                     scope: str | None, checked: list[str], likely_unmarked: bool
                     ) -> UpdateCall:
        raise NotImplementedError

    def _unavailable(self, action: str, exc: BaseException,
                     node: RedisNode | None = None) -> StoreUnavailableError:
        raise NotImplementedError

    def _refused(self, action: str, error: ResponseError,
                 node: RedisNode | None = None) -> StoreUnavailableError:
        raise NotImplementedError

    def _read_plain(self, update: UpdateCall, commands: list[bytes]
                    ) -> tuple[list[Any], list[bytes | None] | None]:
        """Run the update's read commands on its node; a layout whose ``write`` keeps plain
        records elsewhere also returns them, per key (None: none), to merge in."""
        return self._update_trip(update, commands), None

    def _update_trip(self, update: UpdateCall, commands: list[bytes]) -> list[Any]:
        """One round trip of an update's commands to the node that holds its keys."""
        return self._trip(update.node, commands, update.action)

    def _update_node(self, update: UpdateCall) -> RedisNode:
        """The node a deferred commit of ``update`` is sent to."""
        return update.node

    def _redirected(self) -> None:
        """Called when a deferred commit was answered MOVED or ASK (it did not run)."""

    def _before_commit(self, update: UpdateCall) -> None:
        """Called before an update's commit is sent."""

    def _after_commit(self, commit: Commit) -> None:
        """Called after a commit is confirmed."""

    def _trip(self, node: RedisNode, commands: list[bytes], action: str) -> list[Any]:
        """One round trip to ``node``; an error reply or a broken connection raises
        StoreUnavailableError."""
        try:
            replies = node.round_trip(commands)
        except UNAVAILABLE as exc:
            raise self._unavailable(action, exc, node) from exc
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise self._refused(action, reply, node)
        return replies

    def update(self, view: str, keys: Sequence[bytes], modify: Modify, *,
               scope: str | None = None, ids: Sequence[str] = (),
               markers: Sequence[str] = (), likely_unmarked: bool = False,
               defer: bool = False) -> int:
        """Read, ``modify`` and write ``keys`` and mark ``ids`` and ``markers`` under
        ``scope`` as one optimistic transaction (see the module docstring); retried on a
        conflicting write, up to a bound. With ``likely_unmarked`` the first attempt does
        not read the marks: its commit checks that every id is still unmarked.

        With ``defer`` the commit is sent and not waited for (:meth:`settle` confirms it).
        When no mark needs reading, only the keys whose record this client does not hold
        (it read or wrote them last) are read, none when it holds all: ``modify`` runs on
        the held records, those of a deferred update still unconfirmed included, and the
        commit's checks tell whether they were current. So a stream consumer merges its
        next batch while the server applies the one before."""
        check_update(view, scope, ids, markers)
        update = self._update_call(view, list(dict.fromkeys(keys)), modify, scope=scope,
                                   checked=list(dict.fromkeys([*ids, *markers])),
                                   likely_unmarked=likely_unmarked)
        if defer:
            return self._send_deferred(update)
        return self._update_now(update)

    def _update_now(self, update: UpdateCall, *, first_attempt: int = 0) -> int:
        """Run ``update`` to its confirmed end: read, modify, commit; again on a conflict."""
        for attempt in range(first_attempt, UPDATE_ATTEMPTS):
            read = self._read_for(update, read_marks=not (update.likely_unmarked
                                                          and attempt == 0))
            commit = self._prepare_commit(update, read)
            self._before_commit(update)
            (done,) = self._update_trip(update, [commit.command])
            if done:
                self._remember(commit)
                self._after_commit(commit)
                return commit.stored
            # something read changed since: read again, after a short random pause
            time.sleep(random.uniform(0, min(_BACKOFF_S * 2**attempt, _BACKOFF_MAX_S)))
        raise StoreUnavailableError(
            f"cannot {update.action} the Redis online store at {self._safe_url}: other "
            f"writers changed the same entities or markers during {UPDATE_ATTEMPTS} attempts "
            "in a row. Fix: send each entity's events through fewer concurrent writers (one "
            "consumer per partition), or apply smaller batches")

    def _read_for(self, update: UpdateCall, *, read_marks: bool) -> _Read:
        """One round trip: the marks of the update's ids (when ``read_marks`` and it has a
        scope) and each key's version, with its record unless it is the one held."""
        read_marks = read_marks and update.scope is not None and bool(update.checked)
        held = self._cache.held(update.field, update.keys)
        reads = []
        if read_marks:
            reads.append(pack((b"ZMSCORE", update.marks_key, *update.checked)))
        if update.keys:
            reads.append(pack((b"EVAL", self._layout.read_script, len(update.script_keys),
                               *update.script_keys, *update.read_prefix,
                               *[b"" if h is None else h[0] for h in held])))
        replies, plain = self._read_plain(update, reads)
        marked: set[str] = set()
        if read_marks:
            oldest = time.time_ns() // 1_000 - self._retention_us
            marked = {marker for marker, score in zip(update.checked, replies.pop(0),
                                                      strict=True)
                      if score is not None and float(score) > oldest}
        flat = replies[0] if update.keys else []
        stored: list[bytes | None] = [
            h[1] if data == 1 and h is not None else data
            for data, h in zip(flat[1::2], held, strict=True)]
        current = stored
        if plain is not None:  # a plain record that sorts at least as high is the current one
            current = [p if p is not None and (s is None or p[:20] >= s[:20]) else s
                       for p, s in zip(plain, stored, strict=True)]
        return _Read(flat[0::2], stored, current, marked)

    def _read_unheld(self, update: UpdateCall) -> _Read:
        """What a deferred update that needs no marks works on: the record held for each
        key it holds (the commit's version checks tell whether it was current), and for the
        others what one round trip reads of them alone (none when every key is held). A
        consumer holds nearly every entity of a batch once it has seen them: its first
        batches bring new ones, and a skewed stream keeps bringing a few."""
        held = self._cache.held(update.field, update.keys)
        if None not in held:
            entries = cast("list[Held]", held)
            records: list[bytes | None] = list(map(_RECORD, entries))
            versions: list[bytes | None] = list(map(_VERSION, entries))
            if b"" in versions:  # held as absent: reads None
                records = [data or None for data in records]
                versions = [version or None for version in versions]
            return _Read(versions, records, records, set())
        _, got = self._read_alone(update.view, [key for key, h in zip(
            update.keys, held, strict=True) if h is None], update.modify, update.scope)
        versions = []
        stored: list[bytes | None] = []
        current: list[bytes | None] = []
        at = 0
        for h in held:
            if h is None:
                versions.append(got.versions[at])
                stored.append(got.stored[at])
                current.append(got.current[at])
                at += 1
            else:
                versions.append(h[0] or None)
                stored.append(h[1] or None)
                current.append(stored[-1])
        return _Read(versions, stored, current, set())

    def _read_alone(self, view: str, keys: list[bytes], modify: Modify,
                    scope: str | None) -> tuple[UpdateCall, _Read]:
        """One round trip reading ``keys`` of ``view`` (no marks), and the call it made."""
        update = self._update_call(view, keys, modify, scope=scope, checked=[],
                                   likely_unmarked=True)
        return update, self._read_for(update, read_marks=False)

    def prefetch(self, view: str, keys: Sequence[bytes]) -> None:
        """Read the records of ``keys`` this client does not hold, in one round trip, and
        hold them at their versions, or hold that there is none (see
        :class:`~headwater.online.base.OnlineStore`). A record without a version (a plain
        ``write``'s) or one that a plain record of the entity supersedes is left for the
        update to read. What a commit held meanwhile stays: it is newer."""
        field = view.encode()
        held = self._cache.held(field, keys)
        unheld = list(dict.fromkeys(key for key, h in zip(keys, held, strict=True)
                                    if h is None))
        if not unheld:
            return
        update, got = self._read_alone(view, unheld, _never, None)
        found = [(key, version or b"", data or b"") for key, version, data, current in zip(
            update.keys, got.versions, got.stored, got.current, strict=True)
            if current is data and (version is None) == (data is None)]
        if found:
            found_keys, versions, records = map(list, zip(*found, strict=True))
            self._cache.keep_new(update.field, found_keys, versions, records)

    def _prepare_commit(self, update: UpdateCall, read: _Read) -> Commit:
        """Run ``modify`` on what was read and pack the commit script's call."""
        records = update.modify(read.marked, dict(zip(update.keys, read.current, strict=True)))
        check_modified(update.view, update.keys, records)
        now = time.time_ns() // 1_000
        marking = update.checked if update.scope is not None else []
        unmarked = (bytes(0x30 if m in read.marked else 0x31 for m in marking)
                    if read.marked else b"1" * len(marking))
        prefix = os.urandom(6).hex().encode()
        new = list(map(records.get, update.keys, repeat(b"")))
        # per entity what it held (module docstring of redis_scripts), then its new record
        held = [version if version is not None else b"" if data is None else b"\0" + data
                for version, data in zip(read.versions, read.stored, strict=True)]
        entities: list[bytes] = [b""] * (2 * len(new))
        entities[0::2], entities[1::2] = held, new
        command = pack_bytes([
            b"EVAL", self._layout.commit_script, b"%d" % (1 + len(update.script_keys)),
            update.marks_key, *update.script_keys, update.field, update.vfield, b"%d" % now,
            b"%d" % (now - self._retention_us), b"1" if update.scope is not None else b"0",
            b"%d" % len(update.keys), b"%d" % len(marking), unmarked, prefix, *entities,
            *_encoded(marking), *update.tail])
        return Commit(update, read, new, prefix, len(records), command)

    def _send_deferred(self, update: UpdateCall) -> int:
        """Send ``update``'s commit without waiting for its reply (:meth:`settle`)."""
        no_marks = update.likely_unmarked or update.scope is None or not update.checked
        if update.keys and no_marks:
            read = self._read_unheld(update)
        else:
            read = self._read_for(update, read_marks=not update.likely_unmarked)
        commit = self._prepare_commit(update, read)
        self._before_commit(update)
        pending = self._pending()
        node = self._update_node(update)
        # after the commits before it on the same node's connection, so they run in order
        conn = next((p.conn for p in reversed(pending) if p.node is node), None)
        try:
            if conn is None:
                conn = node.connection()
            conn.send_packed_command([commit.command], check_health=False)
        except UNAVAILABLE as exc:
            self._abandon(conn, node)
            raise self._unavailable(update.action, exc, node) from exc
        self._remember(commit)  # a failed commit forgets these again when settled
        pending.append(_Pending(commit, conn, node))
        return commit.stored

    def settle(self, keep: int = 0) -> None:
        """Confirm this thread's deferred updates, oldest first, until ``keep`` remain. A
        commit whose checks failed (something it read, or held, changed meanwhile) is run
        again now, reading what is stored, as :meth:`update` does; so after this, every
        settled update took effect exactly once (its ``modify`` may have run again).
        Raises StoreUnavailableError when Redis cannot be reached or refuses; the updates
        not confirmed by then may or may not have taken effect (their marks say which)."""
        pending = self._pending()
        while len(pending) > keep:
            first = pending.popleft()
            commit, conn, node = first.commit, first.conn, first.node
            try:
                done = conn.read_response()
            except AskError:  # MOVED too: the slot moved and the commit did not run
                self._redirected()
                done = 0
            except ResponseError as exc:
                self._abandon(conn, node)
                raise self._refused(commit.update.action, exc, node) from exc
            except UNAVAILABLE as exc:
                self._abandon(conn, node)
                raise self._unavailable(commit.update.action, exc, node) from exc
            if not any(p.conn is conn for p in pending):
                node.idle.append(conn)
            if done:
                self._after_commit(commit)
            else:
                self._cache.forget(commit.update.field, commit.update.keys)
                self._update_now(commit.update, first_attempt=1)

    def pending(self) -> int:
        """How many deferred updates of this thread are not settled yet."""
        return len(self._pending())

    def _pending(self) -> deque[_Pending]:
        try:
            return cast("deque[_Pending]", self._local.pending)
        except AttributeError:
            self._local.pending = deque()
            return cast("deque[_Pending]", self._local.pending)

    def _abandon(self, conn: Any, node: RedisNode | None) -> None:
        """After an error on a deferred commit's connection: drop it and every deferred
        update of this thread (their outcome is unknown) and forget what they held."""
        pending = self._pending()
        for entry in pending:
            self._cache.forget(entry.commit.update.field, entry.commit.update.keys)
        conns = {id(entry.conn): (entry.conn, entry.node) for entry in pending}
        if conn is not None and node is not None:
            conns[id(conn)] = (conn, node)
        pending.clear()
        for broken, owner in conns.values():
            owner.drop(broken)

    def _remember(self, commit: Commit) -> None:
        """Hold what a commit leaves: the records it writes at their new versions (the
        prefix and the position from 1, as the commit script names them) and those it read
        at a version and leaves."""
        keys, new = commit.update.keys, commit.new
        held_keys = list(compress(keys, new))  # b"" (not written) is false
        held_versions = list(compress(map(commit.prefix.__add__, _positions(len(new))), new))
        held_records = list(filter(None, new))
        if len(held_keys) < len(keys):  # some were read and left
            for key, version, data, current, record in zip(
                    keys, commit.read.versions, commit.read.stored, commit.read.current, new,
                    strict=True):
                if (not record and version is not None and data is not None
                        and current is data):
                    held_keys.append(key)
                    held_versions.append(version)
                    held_records.append(data)
        self._cache.keep(commit.update.field, held_keys, held_versions, held_records)


_VERSION = itemgetter(0)
_RECORD = itemgetter(1)
_POSITIONS: list[list[bytes]] = [[]]


def _positions(n: int) -> list[bytes]:
    """``b"1"`` to ``n`` as bytes (the version suffixes of an update's entities), made once
    for all updates (a longer list replaces the shared one whole, so threads never see a
    list being extended)."""
    known = _POSITIONS[0]
    if len(known) < n:
        known = [b"%d" % i for i in range(1, max(n, 2 * len(known)) + 1)]
        _POSITIONS[0] = known
    return known[:n]


def _encoded(texts: list[str]) -> list[bytes]:
    """``texts`` as UTF-8, encoded together (one call, not one per text) unless one holds
    the separator."""
    joined = "\n".join(texts)
    parts = joined.encode().split(b"\n")
    return parts if len(parts) == len(texts) else [t.encode() for t in texts]


def _never(marked: set[str], current: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
    """The ``modify`` of a read that is not an update (:meth:`OptimisticUpdates.prefetch`)."""
    raise AssertionError("a prefetch modifies nothing")
