"""The online store protocol.

An online store keeps one record per (feature view, entity): the latest feature row it was
given, with its event time. Keys and records are opaque bytes made by
:mod:`headwater.online.encoding`; a store only compares the first
:data:`~headwater.online.encoding.ORDER_BYTES` bytes of records, which sort like the
``(definition generation, event time, created time)`` triple. A write never replaces a
stored record with one that sorts lower; an equal one replaces it (a later delivery wins a
tie, as in the offline join). So a newer definition of a view always replaces records of an
older one, and a writer still working under an older definition never overwrites newer ones.

Aggregated views keep tile records instead (:mod:`headwater.aggregation.tiles`), changed by
``update``: a read-modify-write of some keys in one transaction that also marks event ids
under a scope, so a re-applied batch is skipped (exactly once; see
:mod:`headwater.materialize.tiles`). Markers older than a retention (7 days by default) are
pruned by later updates of the same scope.

Implementations: ``sqlite.py`` (embedded default), ``redis.py`` (production). One
conformance suite (``headwater.testing.online``) runs against every implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

MARKER_RETENTION = timedelta(days=7)
"""How long an update's dedupe markers are kept by default; older ones are pruned."""

Modify = Callable[[set[str], dict[bytes, bytes | None]], dict[bytes, bytes]]
"""An update's read-modify-write step: given the ids and markers already marked under the
update's scope and the stored record of each key (None when absent), the records to store.
It runs inside the store's transaction and may run more than once (after a conflict), so it
must depend only on its arguments."""


@dataclass(frozen=True)
class ViewKeys:
    """The entity keys asked of one view in a read."""

    view: str
    keys: Sequence[bytes]


class OnlineStore(Protocol):
    """What serving and materialization need from an online store."""

    def write(self, view: str, keys: Sequence[bytes], records: Sequence[bytes]) -> int:
        """Upsert ``records[i]`` under ``(view, keys[i])`` unless the stored record sorts
        higher. Atomic per record; returns how many records were stored."""
        ...

    def read(self, requests: Sequence[ViewKeys]) -> list[list[bytes | None]]:
        """One round trip: for each request, the stored record of each key (None if none),
        in request order."""
        ...

    def update(self, view: str, keys: Sequence[bytes], modify: Modify, *,
               scope: str | None = None, ids: Sequence[str] = (),
               markers: Sequence[str] = (), likely_unmarked: bool = False,
               defer: bool = False) -> int:
        """Read-modify-write ``keys`` of ``view`` in one transaction, exactly once.

        Inside the transaction: read the stored records of ``keys`` and which of ``ids``
        and ``markers`` are already marked under ``scope``, call ``modify(marked,
        current)``, store what it returns (unconditionally: ``modify`` decides; it may
        return only keys of ``keys``) and mark every id and marker under ``scope`` with the
        time applied. Markers older than the store's retention are pruned. Concurrent
        updates of the same keys or scope never lose one another's effect. Returns how many
        records were stored; nothing is stored when ``modify`` raises.

        ``likely_unmarked``: the caller's hint that none of ``ids`` and ``markers`` is
        marked yet (a batch of first deliveries). A store may then call ``modify`` with no
        marks before reading them, and checks them in the transaction: if one was marked
        after all, nothing is stored and ``modify`` is called again with the marks read.

        ``defer``: the caller will call :meth:`settle` before it relies on the update (a
        stream consumer, to merge its next batch while this one is applied). A store may
        then return before the update is confirmed, with the count ``modify`` gave; until
        settled, the update may still have to run again (calling ``modify`` again). Later
        updates of the same thread already see it or fail their own checks; one that has to
        run again takes effect when settled, after those sent after it, so deferral suits
        modifications that commute (tile merges do)."""
        ...

    def settle(self, keep: int = 0) -> None:
        """Confirm this thread's deferred updates, oldest first, until the newest ``keep``
        remain: each then took effect exactly once (one whose commit found something
        changed is run again, reading what is stored). A store that never defers does
        nothing. Raises StoreUnavailableError like :meth:`update`."""
        ...

    def pending(self) -> int:
        """How many deferred updates of this thread are not settled yet."""
        ...

    def prefetch(self, view: str, keys: Sequence[bytes]) -> None:
        """Read now, in one round trip, what an update of ``keys`` of ``view`` will read,
        so that a deferred update soon after reads nothing: a stream consumer calls it on
        its read-ahead thread while the batch before is applied. A hint only: the update's
        transaction still checks what it read. A store that does not defer does nothing."""
        ...

    def markers_present(self, scope: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are marked under ``scope`` (and not yet pruned)."""
        ...

    def delete_view(self, view: str) -> int:
        """Remove every record of a view; returns how many were removed."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailableError if the store cannot be reached."""
        ...

    def close(self) -> None: ...
