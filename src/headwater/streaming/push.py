"""Push: write rows to a feature view's online store, offline store, or both.

``FeatureStore.push(view, rows, to)`` delegates here. The rows are validated and typed
against the registered view first (:mod:`~headwater.streaming.push_rows`); nothing is
written when they are wrong. Then:

* ``to="online"``: the rows are encoded by the one encoder materialization uses
  (:func:`~headwater.materialize.encode.encode_batch`) and written with the store's
  compare-and-set, so an older pushed row never replaces a newer online value;
* ``to="offline"``: the rows are appended to the view's folder ``FileSource`` as a new
  Parquet file (:mod:`~headwater.streaming.parquet_append`), read by
  ``get_historical_features`` and by materialization from then on. Other views may read
  the same files, so offline rows carry every column of the source's files (its created
  time may be left out), not only the view's;
* ``to="both"``: offline first, then online. If the online write fails, whatever the
  cause, the error (a StoreUnavailableError when the store cannot be reached, else a
  HeadwaterError, chained to the cause) says the rows are kept offline and that
  materializing their time range serves them: nothing is lost.

A pushed row counts as delivered in the sense of ARCHITECTURE.md: online, a push is the
same write as a materialization of that row.

A name that is a ``PushSource`` or ``StreamSource`` (or an aggregated view) takes *events*
instead: :mod:`~headwater.streaming.ingest` validates them once for every view of the source,
appends them to its batch source partitioned by date and applies them to each view online.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureView
from headwater.errors import DataError, DefinitionError, HeadwaterError, StoreUnavailableError
from headwater.offline.entity_frame import key_class
from headwater.streaming.parquet_append import (
    append_file,
    other_columns,
    push_folder,
    source_table,
)
from headwater.streaming.push_rows import prepare_rows
from headwater.types import String

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.online.base import OnlineStore
    from headwater.store import FeatureStore

TARGETS = ("online", "offline", "both")
_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class PushResult:
    """What a push wrote.

    ``online_stored`` counts the records the online store kept: a row older than the stored
    value of its entity is skipped (0 when not pushed online). ``offline_file`` is the new
    Parquet file (None when not pushed offline).

    A push to a push or stream source (:mod:`~headwater.streaming.ingest`) names the source
    in ``view``; ``online_stored`` then adds the events applied to aggregated views, and
    ``offline_files`` lists its files (one per event date)."""

    view: str
    to: str
    rows: int
    online_stored: int = 0
    offline_file: Path | None = None
    offline_files: tuple[Path, ...] = ()


def push(store: FeatureStore, view_name: str, rows: Any, to: str | None = None) -> PushResult:
    """Validate ``rows`` against the view ``view_name`` and write them (module docstring).

    ``to=None`` is ``"both"`` for events of a push or stream source (the offline copy is
    what training and a later materialization read) and ``"online"`` for a view's rows."""
    if to is not None and to not in TARGETS:
        raise DefinitionError("push", "to", f"{to!r} is not a push target",
                              "pass to='online', 'offline' or 'both'")
    from headwater.streaming.ingest import push_events, resolve_feed

    feed = resolve_feed(store, view_name)
    if feed is not None:
        return push_events(store, feed, rows, to or "both")
    to = to or "online"
    view = store.get_feature_view(view_name)
    if to != "offline" and not view.online:
        raise DefinitionError(f"FeatureView '{view.name}'", "online",
                              "the view is not served online (online=False)",
                              "push with to='offline', or set online=True and apply")
    folder = None if to == "online" else push_folder(view, store.repo_path)
    if isinstance(rows, list | tuple) and not rows:
        return PushResult(view.name, to, 0)
    schema = None if folder is None else source_schema(store, view)
    table = prepare_rows(view, rows, other_columns(view, schema))
    check_keys(view, table)
    if table.num_rows == 0:
        return PushResult(view.name, to, 0)
    offline_file = None
    if folder is not None:
        offline_file = append_file(folder, source_table(view, table, schema))
    stored = 0
    if to != "offline":
        try:
            stored = write_online(store.online, view, store.record_generation(view.name), table)
        except Exception as exc:
            # The rows are durable offline whatever the online store raised, and the caller
            # must learn that to recover, so every failure is re-raised saying so (chained).
            if offline_file is None:
                raise
            raise kept_offline(exc, table, str(offline_file)) from exc
    return PushResult(view.name, to, table.num_rows, stored, offline_file,
                      () if offline_file is None else (offline_file,))


def kept_offline(exc: Exception, table: pa.Table, offline_file: str) -> HeadwaterError:
    """The error of a failed online write after the offline one: a StoreUnavailableError
    when the store could not be reached (a retry may work), else a HeadwaterError."""
    kind = StoreUnavailableError if isinstance(exc, StoreUnavailableError) else HeadwaterError
    what = str(exc) if isinstance(exc, HeadwaterError) else f"{type(exc).__name__}: {exc}"
    return kind(
        f"push: the online write failed ({what}). The {table.num_rows} pushed rows are "
        f"saved offline in {offline_file}. Fix: once the online store works, materialize "
        "their time range to serve them online (do not push them again offline)"
    )


def write_online(online: OnlineStore, view: FeatureView, generation: int,
                 table: pa.Table) -> int:
    """Encode prepared rows as records of definition ``generation`` and write them with the
    store's compare-and-set; returns how many records were stored."""
    from headwater.materialize.encode import encode_batch

    stored = 0
    for batch in table.to_batches(max_chunksize=_BATCH_ROWS):
        keys, records = encode_batch(view, generation, batch)
        stored += online.write(view.name, keys, records)
    return stored


def source_schema(store: FeatureStore, view: FeatureView) -> pa.Schema | None:
    """The source's current schema, or None when its folder holds no file yet."""
    from headwater.definitions import FileSource
    from headwater.offline.source_reader import SourceReader

    if isinstance(view.batch_source, FileSource):
        try:
            SourceReader(store.settings).files(view.batch_source)
        except DataError:
            return None
    return store.offline.source_schema(view.batch_source)


def check_keys(view: FeatureView, table: pa.Table, owner: str | None = None) -> None:
    """Pushed keys must have the class the view registered (its source's), or online keys
    would never match the ones materialization and reads use."""
    owner = owner or f"push to feature view '{view.name}'"
    for key in view.join_keys:
        dtype = view.key_dtype(key)
        if dtype is None:
            continue  # registered before key dtypes were recorded
        stored = "string" if dtype == String else "integer"
        pushed = key_class(table.column(key).type)
        if pushed != stored:
            raise DataError(
                f"{owner}: join key '{key}' is pushed as "
                f"{pushed} values but {view.batch_source.label()} stores it as {stored}. Fix: "
                f"pass '{key}' as {stored} values, as the source has them")
