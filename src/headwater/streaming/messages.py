"""Stream messages -> validated events, with malformed messages set apart for the dead letter.

A message is one event. Its payload is a JSON object (a NATS message's data, or a Redis
Streams entry's ``data`` field), or, for Redis entries without ``data``, the entry's flat
fields, whose string values are typed by the views' schemas (``"12.5"`` for a Float64
column, ``"true"`` for a Bool). Times are ISO-8601 strings, read by the offline engine's
rules (naive means UTC). The event id (the Redis entry id or the NATS stream sequence)
travels with the event for exactly-once dedupe.

Decoding is columnar: a run of JSON payloads is parsed as one block of JSON lines by
Arrow, then validated as a pushed table (:func:`~headwater.streaming.ingest.prepare_events`).
When a block fails, it is split in halves until every malformed message is isolated, each
with the reason it was refused; the valid ones keep their stream order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from headwater.errors import DataError
from headwater.offline.entity_frame import key_class
from headwater.streaming.ingest import Feed, prepare_events
from headwater.streaming.parquet_append import source_table
from headwater.types import Timestamp

if TYPE_CHECKING:
    import pyarrow as pa

DATA_FIELD = b"data"
"""The Redis Streams field holding an event's JSON object."""


class Message(NamedTuple):
    """One stream message: ``topic`` it came from, ``id`` (the event id), the JSON object
    ``data`` or the flat ``fields`` (Redis), and the reader's ``handle`` to acknowledge it.
    ``fresh`` says the stream delivers it for the first time to the consumer group (a
    Redis ``>`` read, a JetStream first delivery), so no consumer of the group can have
    applied it yet; False when unknown. (A named tuple: a reader makes one per message, and
    a tuple is built several times faster than a frozen dataclass.)"""

    topic: str
    id: str
    data: bytes | None = None
    fields: Mapping[bytes, bytes] | None = None
    handle: Any = None
    fresh: bool = False


_ID = attrgetter("id")
_FRESH = attrgetter("fresh")


def message_ids(messages: Sequence[Message]) -> list[str]:
    """The event id of each message, in order."""
    return list(map(_ID, messages))


def all_fresh(messages: Sequence[Message]) -> bool:
    """Whether every message is a first delivery (:attr:`Message.fresh`)."""
    return all(map(_FRESH, messages))


@dataclass(frozen=True)
class Decoded:
    """A batch's valid events (``events``, validated; ``offline``, laid out as the source's
    files, None when not written offline), their ``messages`` in stream order, and the
    refused messages with their reasons."""

    events: pa.Table | None
    offline: pa.Table | None
    messages: list[Message]
    refused: list[tuple[Message, str]]


def decode(feed: Feed, messages: Sequence[Message], schema: pa.Schema | None, *,
           offline: bool) -> Decoded:
    """Decode and validate ``messages`` of ``feed`` (module docstring). ``schema`` is the
    source's file schema (None before the first file); ``offline`` lays the events out as
    the source's files too."""
    import pyarrow as pa

    out = _Out([], [], [])
    for run in _runs(messages):
        parse = _parse_json if run[0].data is not None else _parse_fields
        _bisect(_Run(feed, schema, offline, parse), run, out)
    parts, kept, refused = out
    if not parts:
        return Decoded(None, None, [], refused)
    events = parts[0] if len(parts) == 1 else pa.concat_tables(
        parts, promote_options="permissive")
    layout = source_table(feed.union, events, schema) if offline else None
    return Decoded(events, layout, kept, refused)


def _runs(messages: Sequence[Message]) -> list[list[Message]]:
    """Consecutive messages of one kind (JSON or flat fields), in order."""
    if None not in [m.data for m in messages]:  # the usual: every message is JSON
        return [list(messages)] if messages else []
    runs: list[list[Message]] = []
    for message in messages:
        if runs and (runs[-1][0].data is None) == (message.data is None):
            runs[-1].append(message)
        else:
            runs.append([message])
    return runs


class _Run(NamedTuple):
    feed: Feed
    schema: pa.Schema | None
    offline: bool
    parse: Callable[[Feed, list[Message]], pa.Table]


class _Out(NamedTuple):
    parts: list[pa.Table]
    kept: list[Message]
    refused: list[tuple[Message, str]]


def _bisect(how: _Run, run: list[Message], out: _Out) -> None:
    """Validate ``run`` whole, or in halves until each malformed message is alone."""
    import pyarrow as pa

    try:
        events = prepare_events(how.feed, how.parse(how.feed, run), how.schema)
        if how.offline:
            source_table(how.feed.union, events, how.schema)  # refuses missing columns
    except (DataError, pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
            UnicodeDecodeError) as exc:
        if len(run) == 1:
            out.refused.append((run[0], _reason(run[0], exc)))
            return
        middle = len(run) // 2
        _bisect(how, run[:middle], out)
        _bisect(how, run[middle:], out)
        return
    out.parts.append(events)
    out.kept.extend(run)


def _reason(message: Message, exc: Exception) -> str:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, DataError):
        return detail
    return (f"message {message.id} on '{message.topic}' is not a valid event ({detail}). "
            "Fix: publish one JSON object per message with the source's columns, times as "
            "ISO-8601 strings")


def json_schema(feed: Feed) -> pa.Schema:
    """The Arrow types JSON payloads are parsed with: integer or string keys, time columns
    as strings (parsed afterwards by the offline rules), scalar columns as their dtype;
    other columns are inferred."""
    import pyarrow as pa

    union = feed.union
    fields = []
    for key in union.join_keys:
        dtype = union.key_dtype(key)
        stored = None if dtype is None else key_class(dtype.to_arrow())
        fields.append(pa.field(key, pa.string() if stored == "string" else pa.int64()))
    fields += [pa.field(name, pa.string()) for name in union.batch_source.time_columns()]
    for column in union.schema or ():
        if column.dtype == Timestamp:
            fields.append(pa.field(column.name, pa.string()))
        elif column.dtype.inner is None:
            fields.append(pa.field(column.name, column.dtype.to_arrow()))
    return pa.schema(fields)


def _parse_json(feed: Feed, run: list[Message]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.json as pj

    lines = [m.data for m in run if m.data is not None]
    block = b"\n".join(lines)
    if block.count(b"\n") != len(lines) - 1 or b"\r" in block:  # line breaks in a message
        block = b"\n".join([line.replace(b"\n", b" ").replace(b"\r", b" ")  # outside strings
                            for line in lines])
    options = pj.ParseOptions(explicit_schema=json_schema(feed),
                              unexpected_field_behavior="infer")
    table = pj.read_json(pa.py_buffer(block), parse_options=options,
                         read_options=pj.ReadOptions(block_size=max(1 << 20, 2 * len(block))))
    if table.num_rows != len(run):
        raise DataError(f"{len(run)} messages gave {table.num_rows} JSON objects. Fix: "
                        "publish exactly one JSON object per message")
    return table


def _parse_fields(feed: Feed, run: list[Message]) -> pa.Table:
    """Flat fields as strings, cast to the types :func:`json_schema` gives them."""
    import pyarrow as pa

    rows = [{k.decode(): v.decode() for k, v in (m.fields or {}).items()} for m in run]
    table = pa.Table.from_pylist(rows)
    types = {f.name: f.type for f in json_schema(feed)}
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        wanted = types.get(name)
        if wanted is not None and wanted != column.type:
            column = column.cast(wanted)
        columns[name] = column
    return pa.table(columns)
